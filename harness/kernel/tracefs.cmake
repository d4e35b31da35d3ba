# tracefs instances, events, kprobes and the trace_pipe reader (issue 3).
target_sources(krepro_kernel PRIVATE ${CMAKE_CURRENT_LIST_DIR}/tracefs.cpp)

# One source, two binaries: unit tests on a fake tree run anywhere; the
# kernel-labelled one makes a real instance (root) and skips otherwise.
krepro_test(tracefs_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/tracefs_test.cpp LIBS krepro::kernel)
krepro_test(tracefs_kernel_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/tracefs_test.cpp
            LIBS krepro::kernel LABEL kernel)
if(TARGET tracefs_kernel_test)
  target_compile_definitions(tracefs_kernel_test PRIVATE KREPRO_TRACEFS_KERNEL_TEST=1)
endif()
