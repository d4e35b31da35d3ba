# Kernel-side I/O evidence from tracefs and stall attribution (issue 3).
target_sources(krepro_detect PRIVATE ${CMAKE_CURRENT_LIST_DIR}/io_trace.cpp)
if(TARGET krepro_workloads)
  target_link_libraries(krepro_detect PUBLIC krepro::workloads)
endif()

krepro_test(io_trace_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/io_trace_test.cpp LIBS krepro::detect)
krepro_test(io_trace_kernel_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/io_trace_kernel_test.cpp
            LIBS krepro::detect LABEL kernel)
foreach(t io_trace_test io_trace_kernel_test)
  if(TARGET ${t})
    target_compile_definitions(${t} PRIVATE
      KREPRO_TRACE_TESTDATA="${CMAKE_CURRENT_LIST_DIR}/testdata/trace")
  endif()
endforeach()
krepro_bench(io_trace_bench SOURCES ${CMAKE_CURRENT_LIST_DIR}/io_trace_bench.cpp LIBS krepro::detect)
if(TARGET io_trace_bench)
  target_compile_definitions(io_trace_bench PRIVATE
    KREPRO_TRACE_TESTDATA="${CMAKE_CURRENT_LIST_DIR}/testdata/trace")
endif()
