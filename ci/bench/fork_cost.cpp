// What one churn job costs the parent depending on how it is started: fork()
// (what harness/kernel/job.cpp Job::fork_payload does) against
// clone(CLONE_VM | CLONE_VFORK) (what posix_spawn does), from a process of a
// given resident size and thread count, with the same child: open a file,
// write 4 KiB, close, _exit. Measures wall time and page faults
// (self + children, getrusage) per job, so it answers on a noisy machine
// too: the fault count does not depend on the load.
// Caveat for using the second: a CLONE_VM child's page cache is charged to
// the mm owner's memcg (mm/memcontrol.c get_mem_cgroup_from_mm), i.e. the
// parent's, not the cgroup the child joined; results/BENCHMARKS.md.
//
//   fork_cost SCRATCH_DIR [RSS_MIB=10] [THREADS=4] [JOBS=2000]
// Prints one JSON line per method.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

long faults() {
  rusage self{}, kids{};
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &kids);
  return self.ru_minflt + self.ru_majflt + kids.ru_minflt + kids.ru_majflt;
}

char g_block[4096];
const char* g_path = nullptr;

// Syscalls only: it also runs on the parent's memory under CLONE_VM.
int child_body(void*) {
  int fd = open(g_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) _exit(1);
  if (write(fd, g_block, sizeof g_block) != static_cast<ssize_t>(sizeof g_block)) _exit(2);
  close(fd);
  _exit(0);
}

std::atomic<bool> g_stop{false};

// Threads that keep touching their own pages, as krepro's sampler, kmsg
// reader and other workers do: after a fork every such write is a COW fault
// in the parent.
void busy_thread(char* page) {
  while (!g_stop.load(std::memory_order_relaxed)) {
    for (int i = 0; i < 4096; i += 64) page[i]++;
    usleep(10000);
  }
}

void report(const char* method, int jobs, double secs, long flt) {
  std::printf("{\"method\":\"%s\",\"jobs\":%d,\"us_per_job\":%.1f,\"faults_per_job\":%.1f}\n",
              method, jobs, secs / jobs * 1e6, static_cast<double>(flt) / jobs);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: fork_cost SCRATCH_DIR [RSS_MIB] [THREADS] [JOBS]\n");
    return 2;
  }
  std::string path = std::string(argv[1]) + "/krepro-fork-cost";
  g_path = path.c_str();
  size_t rss = static_cast<size_t>(argc > 2 ? std::atol(argv[2]) : 10) << 20;
  int threads = argc > 3 ? std::atoi(argv[3]) : 4;
  int jobs = argc > 4 ? std::atoi(argv[4]) : 2000;
  std::memset(g_block, 'f', sizeof g_block);

  // The resident heap a long-lived harness process has.
  char* heap = static_cast<char*>(std::malloc(rss));
  for (size_t i = 0; i < rss; i += 4096) heap[i] = 1;
  std::vector<char*> pages;
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i) {
    pages.push_back(static_cast<char*>(std::aligned_alloc(4096, 4096)));
    ts.emplace_back(busy_thread, pages.back());
  }

  const size_t kStack = 64 << 10;
  char* stack = static_cast<char*>(mmap(nullptr, kStack, PROT_READ | PROT_WRITE,
                                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0));

  for (int round = 0; round < 2; ++round) {
    long f0 = faults();
    double t0 = now_s();
    for (int i = 0; i < jobs; ++i) {
      pid_t pid = fork();
      if (pid == 0) child_body(nullptr);
      if (pid < 0) return 1;
      int st;
      waitpid(pid, &st, 0);
    }
    report("fork", jobs, now_s() - t0, faults() - f0);

    f0 = faults();
    t0 = now_s();
    for (int i = 0; i < jobs; ++i) {
      // The parent thread sleeps until the child exits (CLONE_VFORK), so
      // the child may use the parent's memory; no page tables are copied.
      pid_t pid = clone(child_body, stack + kStack, CLONE_VM | CLONE_VFORK | SIGCHLD, nullptr);
      if (pid < 0) return 1;
      int st;
      waitpid(pid, &st, 0);
    }
    report("clone_vm_vfork", jobs, now_s() - t0, faults() - f0);
  }
  g_stop = true;
  for (auto& t : ts) t.join();
  unlink(g_path);
  munmap(stack, kStack);
  std::free(heap);
  for (char* p : pages) std::free(p);
  return 0;
}
