# TiKV-like write I/O: io engines (io_uring / psync), latency recording, streams.
target_sources(krepro_workloads PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/io_engine.cpp
  ${CMAKE_CURRENT_LIST_DIR}/op_recorder.cpp
  ${CMAKE_CURRENT_LIST_DIR}/tikv_streams.cpp
)
target_link_libraries(krepro_workloads PUBLIC nlohmann_json::nlohmann_json)

krepro_test(io_engine_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/io_engine_test.cpp LIBS krepro::workloads)
krepro_test(op_recorder_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/op_recorder_test.cpp LIBS krepro::workloads)
krepro_test(tikv_streams_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/tikv_streams_test.cpp LIBS krepro::workloads)
krepro_bench(op_recorder_bench SOURCES ${CMAKE_CURRENT_LIST_DIR}/op_recorder_bench.cpp LIBS krepro::workloads)
