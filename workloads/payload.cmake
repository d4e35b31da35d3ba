target_sources(krepro_workloads PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/payload.cpp
  ${CMAKE_CURRENT_LIST_DIR}/payload_spawner.cpp
)
krepro_test(payload_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/payload_test.cpp LIBS krepro::workloads)
# Spawned payloads against real memory cgroups (root); the test binary's own
# main serves __job-spawner, as krepro's does.
krepro_test(payload_spawner_kernel_test
            SOURCES ${CMAKE_CURRENT_LIST_DIR}/payload_spawner_kernel_test.cpp
            LIBS krepro::workloads LABEL kernel)
