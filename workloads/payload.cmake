target_sources(krepro_workloads PRIVATE ${CMAKE_CURRENT_LIST_DIR} / payload.cpp)
    krepro_test(payload_test SOURCES ${CMAKE_CURRENT_LIST_DIR} /
                payload_test.cpp LIBS krepro::workloads)
