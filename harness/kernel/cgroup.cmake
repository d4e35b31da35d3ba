target_sources(krepro_kernel PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/cgroup.cpp
  ${CMAKE_CURRENT_LIST_DIR}/job.cpp
  ${CMAKE_CURRENT_LIST_DIR}/host_probe.cpp
  ${CMAKE_CURRENT_LIST_DIR}/loopdev.cpp
)
krepro_test(cgroup_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/cgroup_test.cpp LIBS krepro::kernel)
krepro_test(cgroup_kernel_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/cgroup_kernel_test.cpp
            LIBS krepro::kernel LABEL kernel)
