# /dev/kmsg reader and kernel taint (issue 4).
target_sources(krepro_kernel PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/kmsg.cpp
  ${CMAKE_CURRENT_LIST_DIR}/taint.cpp
)

# One source, two binaries: unit tests run anywhere; the kernel-labelled one
# writes to the real /dev/kmsg (root) and skips otherwise.
krepro_test(kmsg_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/kmsg_test.cpp
                              ${CMAKE_CURRENT_LIST_DIR}/taint_test.cpp LIBS krepro::kernel)
krepro_test(kmsg_kernel_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/kmsg_test.cpp
            LIBS krepro::kernel LABEL kernel)
if(TARGET kmsg_kernel_test)
  target_compile_definitions(kmsg_kernel_test PRIVATE KREPRO_KMSG_KERNEL_TEST=1)
endif()
krepro_bench(kmsg_bench SOURCES ${CMAKE_CURRENT_LIST_DIR}/kmsg_bench.cpp LIBS krepro::kernel)

if(KREPRO_FUZZ)
  # Instrument the parser for libFuzzer coverage (targets in harness/detect/fuzz).
  set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/kmsg.cpp ${CMAKE_CURRENT_LIST_DIR}/taint.cpp
    TARGET_DIRECTORY krepro_kernel
    PROPERTIES COMPILE_OPTIONS "-fsanitize=fuzzer-no-link,address,undefined")
endif()
