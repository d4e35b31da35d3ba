// The plain loop krepro's churn is measured against: the same kernel
// operations, one thread, no harness. Written directly against syscalls and
// libnl so that it shares no code with krepro.
//
//   plain_churn memcg PARENT_DIR SCRATCH_DIR SECONDS [kmem=1]
//     mkdir; kmem 1/-1 + read-back; open cgroup.procs; fork a child that
//     joins the cgroup, writes 4 KiB to a file and exits; wait; unlink;
//     rmdir.
//   plain_churn netns SECONDS
//     (in a private namespace of its own) unshare+open+setns back, lo up,
//     veth pair with the peer in the new namespace, fork a child that
//     enters it and binds 2 sockets, wait, close the namespace.
// Prints {"kind":..., "cycles":N, "seconds":S, "rate":R}.
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

static double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void write_str(const std::string& path, const char* s) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    (void)!write(fd, s, strlen(s));
    close(fd);
  }
}

static int memcg(const std::string& parent, const std::string& scratch, double secs, bool kmem) {
  double t0 = now_s();
  long n = 0;
  static char block[4096];
  memset(block, 'p', sizeof block);
  while (now_s() - t0 < secs) {
    std::string dir = parent + "/krepro-plain-" + std::to_string(n);
    if (mkdir(dir.c_str(), 0755) != 0) {
      perror("mkdir");
      return 1;
    }
    if (kmem) {
      std::string f = dir + "/memory.kmem.limit_in_bytes";
      write_str(f, "1");
      char buf[64];
      int fd = open(f.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        (void)!read(fd, buf, sizeof buf);
        close(fd);
      }
      write_str(f, "-1");
    }
    int procs = open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    std::string file = scratch + "/plain-" + std::to_string(n);
    pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (pwrite(procs, "0", 1, 0) != 1) _exit(2);
      int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd < 0 || write(fd, block, sizeof block) != sizeof block) _exit(3);
      close(fd);
      _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    unlink(file.c_str());
    close(procs);
    if (rmdir(dir.c_str()) != 0) {
      perror("rmdir");
      return 1;
    }
    ++n;
  }
  double el = now_s() - t0;
  printf("{\"kind\":\"memcg\",\"cycles\":%ld,\"seconds\":%.3f,\"rate\":%.1f}\n", n, el, n / el);
  return 0;
}

static void lo_up() {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  strcpy(ifr.ifr_name, "lo");
  ioctl(s, SIOCGIFFLAGS, &ifr);
  ifr.ifr_flags |= IFF_UP;
  ioctl(s, SIOCSIFFLAGS, &ifr);
  close(s);
}

static int netns(double secs) {
  // Its own hub: the host's namespace is never touched.
  if (unshare(CLONE_NEWNET) != 0) {
    perror("unshare");
    return 1;
  }
  int hub = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  nl_sock* sk = nl_socket_alloc();
  if (nl_connect(sk, NETLINK_ROUTE) != 0) return 1;
  double t0 = now_s();
  long n = 0;
  while (now_s() - t0 < secs) {
    if (unshare(CLONE_NEWNET) != 0) {
      perror("unshare");
      return 1;
    }
    int ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    lo_up();
    setns(hub, CLONE_NEWNET);
    rtnl_link* veth = rtnl_link_veth_alloc();
    char name[16];
    snprintf(name, sizeof name, "plv%lx", n & 0xffffffffL);
    rtnl_link_set_name(veth, name);
    rtnl_link* peer = rtnl_link_veth_get_peer(veth);
    rtnl_link_set_name(peer, "eth0");
    rtnl_link_set_ns_fd(peer, ns);
    int err = rtnl_link_add(sk, veth, NLM_F_CREATE | NLM_F_EXCL);
    rtnl_link_put(peer);
    rtnl_link_put(veth);
    if (err < 0) {
      fprintf(stderr, "veth: %s\n", nl_geterror(err));
      return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (setns(ns, CLONE_NEWNET) != 0) _exit(2);
      for (int i = 0; i < 2; ++i) {
        int s = socket(AF_INET, (i ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) _exit(3);
      }
      _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    close(ns);
    ++n;
  }
  double el = now_s() - t0;
  printf("{\"kind\":\"netns\",\"cycles\":%ld,\"seconds\":%.3f,\"rate\":%.1f}\n", n, el, n / el);
  nl_socket_free(sk);
  close(hub);
  return 0;
}

int main(int argc, char** argv) {
  if (argc >= 5 && std::string(argv[1]) == "memcg")
    return memcg(argv[2], argv[3], atof(argv[4]), argc < 6 || atoi(argv[5]) != 0);
  if (argc >= 3 && std::string(argv[1]) == "netns") return netns(atof(argv[2]));
  fprintf(stderr, "usage: plain_churn memcg PARENT SCRATCH SECONDS [kmem] | netns SECONDS\n");
  return 2;
}
