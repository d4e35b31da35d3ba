# Kernel log signatures and `krepro scan` (issue 4).
target_sources(krepro_detect PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/signatures.cpp
  ${CMAKE_CURRENT_LIST_DIR}/log_scan.cpp
)

krepro_test(signatures_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/signatures_test.cpp
                                    ${CMAKE_CURRENT_LIST_DIR}/log_scan_test.cpp
            LIBS krepro::detect)
if(TARGET signatures_test)
  target_compile_definitions(signatures_test PRIVATE
    KREPRO_CORPUS_DIR="${CMAKE_CURRENT_LIST_DIR}/testdata/corpus")
endif()
krepro_bench(signatures_bench SOURCES ${CMAKE_CURRENT_LIST_DIR}/signatures_bench.cpp
             LIBS krepro::detect)

# libFuzzer targets: clang only, e.g.
#   cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DKREPRO_FUZZ=ON \
#         -DKREPRO_TESTS=OFF -DKREPRO_BENCH=OFF
if(KREPRO_FUZZ)
  # Coverage feedback needs the libraries instrumented too, not only the
  # fuzz entry points.
  target_compile_options(krepro_detect PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
  foreach(f kmsg_record_fuzz log_scan_fuzz)
    add_executable(${f} ${CMAKE_CURRENT_LIST_DIR}/fuzz/${f}.cpp)
    target_link_libraries(${f} PRIVATE krepro::detect)
    target_compile_options(${f} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(${f} PRIVATE -fsanitize=fuzzer,address,undefined)
  endforeach()
endif()
