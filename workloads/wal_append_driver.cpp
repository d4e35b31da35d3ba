// Test driver for ci/wal-vs-fio: runs the wal-append pattern (4 KiB appends,
// fdatasync after each, queue depth 1) for --seconds in --dir and prints the
// kv_wal stream's results as JSON. Not installed.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "workloads/tikv_streams.h"

int main(int argc, char** argv) try {
  using namespace krepro::workloads;
  CLI::App app("wal-append pattern driver (fio: ioengine=io_uring rw=write bs=4k fdatasync=1)");
  std::string dir, engine = "io_uring", prealloc = "full";
  double seconds = 10;
  uint64_t size_mib = 256;
  app.add_option("--dir", dir, "directory for the WAL file")->required();
  app.add_option("--seconds", seconds, "run time");
  app.add_option("--engine", engine, "auto | io_uring | psync");
  app.add_option("--prealloc", prealloc, "none | keep_size | full (fio's fallocate=native)");
  app.add_option("--size-mib", size_mib, "WAL file size before rotation");
  CLI11_PARSE(app, argc, argv);

  TikvConfig c = wal_append_config(dir);
  c.engine = engine;
  c.wal.rotate_bytes = size_mib * kMiB;
  if (prealloc == "none") {
    c.wal.prealloc = Prealloc::kNone;
  } else if (prealloc == "keep_size") {
    c.wal.prealloc = Prealloc::kKeepSize;
  } else if (prealloc == "full") {
    c.wal.prealloc = Prealloc::kFull;
  } else {
    std::cerr << "bad --prealloc " << prealloc << "\n";
    return 2;
  }
  auto w = TikvWorkload::create(c);
  if (!w) {
    std::cerr << w.error().message() << "\n";
    return 1;
  }
  if (auto r = (*w)->start(); !r) {
    std::cerr << r.error().message() << "\n";
    return 1;
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  StopReport rep = (*w)->stop();
  nlohmann::json out = (*w)->results();
  out["errors"] = rep.errors;
  out["stop_notes"] = rep.notes;
  std::cout << out.dump(2) << "\n";
  return rep.errors.empty() ? 0 : 1;
} catch (const std::exception& e) {
  std::cerr << "wal_append_driver: " << e.what() << "\n";
  return 3;
}
