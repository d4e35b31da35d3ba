# Network namespaces, links (libnl-route-3) and the hub link monitor.
target_sources(krepro_kernel PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/netns.cpp
  ${CMAKE_CURRENT_LIST_DIR}/link.cpp
  ${CMAKE_CURRENT_LIST_DIR}/link_monitor.cpp
)

# Each test file builds twice: the unit tests (no root) and, with
# KREPRO_KERNEL_TESTS, the kernel tests (label kernel; they skip without root
# or when unshare(CLONE_NEWNET) fails).
foreach(t netns_test link_test link_monitor_test)
  krepro_test(${t} SOURCES ${CMAKE_CURRENT_LIST_DIR}/${t}.cpp LIBS krepro::kernel)
  string(REPLACE "_test" "_kernel_test" kt ${t})
  krepro_test(${kt} SOURCES ${CMAKE_CURRENT_LIST_DIR}/${t}.cpp LIBS krepro::kernel LABEL kernel)
  if(TARGET ${kt})
    target_compile_definitions(${kt} PRIVATE KREPRO_KERNEL_TESTS=1)
  endif()
endforeach()

krepro_bench(net_bench SOURCES ${CMAKE_CURRENT_LIST_DIR}/net_bench.cpp LIBS krepro::kernel)
