target_sources(krepro_detect PRIVATE ${CMAKE_CURRENT_LIST_DIR}/kernel_watch.cpp
                                     ${CMAKE_CURRENT_LIST_DIR}/jitter.cpp)
krepro_test(jitter_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/jitter_test.cpp LIBS krepro::detect)
krepro_test(kernel_watch_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/kernel_watch_test.cpp
            LIBS krepro::detect)
krepro_test(detect_kernel_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/kernel_watch_kernel_test.cpp
            LIBS krepro::detect LABEL kernel)
