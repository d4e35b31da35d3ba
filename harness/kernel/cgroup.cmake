target_sources(krepro_kernel PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/cgroup.cpp
  ${CMAKE_CURRENT_LIST_DIR}/job.cpp
  ${CMAKE_CURRENT_LIST_DIR}/spawner.cpp
  ${CMAKE_CURRENT_LIST_DIR}/host_probe.cpp
  ${CMAKE_CURRENT_LIST_DIR}/loopdev.cpp
)
krepro_test(cgroup_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/cgroup_test.cpp LIBS krepro::kernel)
krepro_test(cgroup_kernel_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/cgroup_kernel_test.cpp
            LIBS krepro::kernel LABEL kernel)
# The job spawner: built twice, unit (no root) and kernel (real cgroups and
# a netns; KREPRO_KERNEL_TESTS). Its main serves __job-spawner itself.
krepro_test(spawner_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/spawner_test.cpp LIBS krepro::kernel)
krepro_test(spawner_kernel_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/spawner_test.cpp
            LIBS krepro::kernel LABEL kernel)
if(TARGET spawner_kernel_test)
  target_compile_definitions(spawner_kernel_test PRIVATE KREPRO_KERNEL_TESTS=1)
endif()
