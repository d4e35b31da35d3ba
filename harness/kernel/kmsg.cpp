#include "harness/kernel/kmsg.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <thread>

#include "harness/util/clock.h"
#include "harness/util/unique_fd.h"

namespace krepro::kernel {
namespace {

template <class T>
bool parse_uint(std::string_view s, T& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string unescape_kmsg(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    // kernel/printk/printk.c msg_add_ext_text escapes c < ' ', c >= 127 and
    // '\' as "\x%02x"; anything else after a backslash is literal text.
    if (text[i] == '\\' && i + 3 < text.size() && text[i + 1] == 'x') {
      int hi = hex_value(text[i + 2]);
      int lo = hex_value(text[i + 3]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi << 4 | lo));
        i += 3;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

Result<KmsgRecord> parse_kmsg_record(std::string_view raw) {
  size_t nl = raw.find('\n');
  std::string_view header_and_msg = raw.substr(0, nl);
  std::string_view rest = nl == std::string_view::npos ? std::string_view() : raw.substr(nl + 1);

  size_t semi = header_and_msg.find(';');
  if (semi == std::string_view::npos) return make_error(EINVAL, "kmsg record: no ';' in header");
  std::string_view header = header_and_msg.substr(0, semi);
  KmsgRecord rec;

  // "prio,seq,ts_usec,flags[,more]": split on commas.
  std::string_view fields[4];
  size_t n = 0;
  size_t pos = 0;
  while (n < 4) {
    size_t comma = header.find(',', pos);
    fields[n++] = header.substr(pos, comma == std::string_view::npos ? comma : comma - pos);
    if (comma == std::string_view::npos) {
      pos = header.size();
      break;
    }
    pos = comma + 1;
  }
  if (n < 4) return make_error(EINVAL, "kmsg record: header has fewer than 4 fields");
  // The rest of the header (after flags) are ",key=value" extensions.
  if (pos < header.size() && header.size() > 0) {
    size_t flags_end = static_cast<size_t>(fields[3].data() - header.data()) + fields[3].size();
    if (flags_end < header.size()) {
      std::string_view more = header.substr(flags_end + 1);
      while (!more.empty()) {
        size_t c = more.find(',');
        rec.extra.emplace_back(more.substr(0, c));
        if (c == std::string_view::npos) break;
        more.remove_prefix(c + 1);
      }
    }
  }
  unsigned prio = 0;
  if (!parse_uint(fields[0], prio)) return make_error(EINVAL, "kmsg record: bad prio");
  if (!parse_uint(fields[1], rec.seq)) return make_error(EINVAL, "kmsg record: bad seq");
  if (!parse_uint(fields[2], rec.ts_us)) return make_error(EINVAL, "kmsg record: bad ts_usec");
  if (fields[3].size() != 1) return make_error(EINVAL, "kmsg record: bad flags");
  rec.facility = static_cast<int>(prio >> 3);
  rec.level = static_cast<int>(prio & 7);
  rec.flags = fields[3][0];
  rec.message = unescape_kmsg(header_and_msg.substr(semi + 1));

  // Dictionary: " KEY=value" lines (msg_add_dict_text); values are escaped
  // like the message.
  while (!rest.empty()) {
    size_t e = rest.find('\n');
    std::string_view line = rest.substr(0, e);
    rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 1);
    if (line.empty()) continue;
    if (line[0] != ' ') break;
    line.remove_prefix(1);
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      rec.dict.emplace_back(unescape_kmsg(line), std::string());
    } else {
      rec.dict.emplace_back(unescape_kmsg(line.substr(0, eq)), unescape_kmsg(line.substr(eq + 1)));
    }
  }
  return rec;
}

struct KmsgReader::State {
  std::string path;
  UniqueFd fd;
  UniqueFd wake;  // eventfd: stop() writes it, the thread polls it
  bool chardev = false;
  std::thread thread;
  Callback cb;
  std::atomic<bool> running{false};
  std::atomic<uint64_t> lost{0};
  std::atomic<uint64_t> overruns{0};
  std::atomic<uint64_t> records{0};
  std::atomic<uint64_t> parse_errors{0};
  bool have_seq = false;
  uint64_t last_seq = 0;
  std::string pending;  // line mode: bytes not yet split into records

  void deliver(std::string_view raw) {
    auto rec = parse_kmsg_record(raw);
    if (!rec) {
      parse_errors.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    rec->received_mono_ns = mono_ns();
    if (have_seq && rec->seq > last_seq + 1) {
      lost.fetch_add(rec->seq - last_seq - 1, std::memory_order_relaxed);
    }
    have_seq = true;
    last_seq = rec->seq;
    records.fetch_add(1, std::memory_order_relaxed);
    if (cb) cb(*rec);
  }

  // Line mode (FIFO, regular file): a record is a header line and the
  // following lines that begin with a space. A record is complete once the
  // next header line has arrived, or at end of input (flush).
  void split_lines(bool flush) {
    size_t start = 0;
    size_t rec_start = std::string::npos;
    size_t i = 0;
    while (true) {
      size_t nl = pending.find('\n', i);
      if (nl == std::string::npos) break;
      bool cont = nl > i && pending[i] == ' ';
      if (!cont) {
        if (rec_start != std::string::npos) {
          deliver(std::string_view(pending).substr(rec_start, i - rec_start));
        }
        rec_start = i;
      }
      i = nl + 1;
      start = i;
    }
    if (rec_start == std::string::npos) {
      pending.erase(0, start);
      return;
    }
    if (flush) {
      deliver(std::string_view(pending).substr(rec_start, start - rec_start));
      pending.erase(0, start);
    } else {
      pending.erase(0, rec_start);
    }
  }

  void loop() {
    std::string buf(16384, '\0');  // > CONSOLE_EXT_LOG_MAX (8 KiB)
    pollfd fds[2] = {{fd.get(), POLLIN, 0}, {wake.get(), POLLIN, 0}};
    while (true) {
      fds[0].revents = fds[1].revents = 0;
      int n = ::poll(fds, 2, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[1].revents != 0) break;
      bool eof = false;
      // devkmsg_poll reports EPOLLERR|EPOLLPRI next to EPOLLIN when records
      // were overwritten; read() then returns EPIPE once, so POLLERR alone is
      // not fatal for the character device.
      if (fds[0].revents & (POLLIN | POLLERR | POLLPRI)) {
        while (true) {
          ssize_t r = ::read(fd.get(), buf.data(), buf.size());
          if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EPIPE) {
              // devkmsg_read: our position was overwritten; the next read
              // returns the oldest record left. lost() counts the sequence gap.
              overruns.fetch_add(1, std::memory_order_relaxed);
              continue;
            }
            if (errno == EAGAIN) break;
            eof = true;
            break;
          }
          if (r == 0) {
            eof = true;
            break;
          }
          if (chardev) {
            // devkmsg_read returns exactly one record per call.
            deliver(std::string_view(buf.data(), static_cast<size_t>(r)));
          } else {
            pending.append(buf.data(), static_cast<size_t>(r));
            split_lines(false);
          }
        }
      } else if (fds[0].revents & (POLLHUP | POLLNVAL)) {
        eof = true;
      }
      if (eof) {
        if (!chardev) split_lines(true);
        break;
      }
    }
    running.store(false);
  }
};

KmsgReader::KmsgReader(std::unique_ptr<State> s) : state_(std::move(s)) {}
KmsgReader::KmsgReader(KmsgReader&&) noexcept = default;
KmsgReader& KmsgReader::operator=(KmsgReader&& o) noexcept {
  if (this != &o) {
    stop();
    state_ = std::move(o.state_);
  }
  return *this;
}
KmsgReader::~KmsgReader() { stop(); }

Result<KmsgReader> KmsgReader::open(std::string path, Options opts) {
  auto s = std::make_unique<State>();
  s->path = std::move(path);
  s->fd.reset(::open(s->path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!s->fd) return errno_error("open " + s->path);
  struct stat st {};
  if (::fstat(s->fd.get(), &st) != 0) return errno_error("fstat " + s->path);
  s->chardev = S_ISCHR(st.st_mode);
  if (!opts.from_start) {
    // devkmsg_llseek SEEK_END: the next read returns the first record logged
    // after this point. A FIFO cannot seek (ESPIPE): it only has new data.
    if (::lseek(s->fd.get(), 0, SEEK_END) < 0 && errno != ESPIPE) {
      return errno_error("lseek SEEK_END " + s->path);
    }
  }
  s->wake.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!s->wake) return errno_error("eventfd");
  return KmsgReader(std::move(s));
}

Result<void> KmsgReader::start(Callback cb) {
  if (!state_) return make_error(EBADF, "kmsg reader: moved from");
  if (state_->thread.joinable()) return make_error(EBUSY, "kmsg reader: already started");
  state_->cb = std::move(cb);
  state_->running.store(true);
  State* s = state_.get();
  state_->thread = std::thread([s] { s->loop(); });
  return {};
}

void KmsgReader::stop() {
  if (!state_ || !state_->thread.joinable()) return;
  uint64_t one = 1;
  // An eventfd write only fails on counter overflow, which one write per
  // stop() cannot reach.
  [[maybe_unused]] ssize_t w = ::write(state_->wake.get(), &one, sizeof(one));
  state_->thread.join();
  state_->running.store(false);
}

bool KmsgReader::running() const { return state_ && state_->running.load(); }
uint64_t KmsgReader::lost() const { return state_ ? state_->lost.load() : 0; }
uint64_t KmsgReader::overruns() const { return state_ ? state_->overruns.load() : 0; }
uint64_t KmsgReader::records() const { return state_ ? state_->records.load() : 0; }
uint64_t KmsgReader::parse_errors() const { return state_ ? state_->parse_errors.load() : 0; }
const std::string& KmsgReader::path() const {
  static const std::string kEmpty;
  return state_ ? state_->path : kEmpty;
}

}  // namespace krepro::kernel
