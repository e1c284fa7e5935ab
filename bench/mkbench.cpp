// vdisk_mkbench: the deterministic benchmark disk, and a random-read timer.
//
//   vdisk_mkbench disk PATH SIZE
//     A raw disk of SIZE bytes (suffix K, M, G, T) made of chunks of varied
//     sizes (4 KiB to 16 MiB, 4 KiB aligned), by byte count about 25% random
//     data, 25% compressible data (log-like text), 25% written zeros and 25%
//     holes. The same SIZE always gives the same bytes.
//   vdisk_mkbench sparse PATH SIZE DATA
//     A sparse raw disk of SIZE bytes holding DATA bytes of random data in
//     1 MiB pieces spread evenly across it.
//   vdisk_mkbench randread PATH COUNT
//     Reads COUNT random 4 KiB blocks (4 KiB aligned, fixed seed) and prints
//     "reads_per_s MB_per_s".
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull) {}
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

uint64_t parse_size(const char* text) {
  char* end = nullptr;
  uint64_t v = std::strtoull(text, &end, 10);
  switch (*end) {
    case 'T':
    case 't':
      v <<= 40;
      break;
    case 'G':
    case 'g':
      v <<= 30;
      break;
    case 'M':
    case 'm':
      v <<= 20;
      break;
    case 'K':
    case 'k':
      v <<= 10;
      break;
    case '\0':
      break;
    default:
      std::fprintf(stderr, "bad size '%s'\n", text);
      std::exit(2);
  }
  return v;
}

void pwrite_all(int fd, const uint8_t* p, size_t len, uint64_t off) {
  while (len > 0) {
    ssize_t n = ::pwrite(fd, p, len, static_cast<off_t>(off));
    if (n <= 0) {
      std::perror("pwrite");
      std::exit(1);
    }
    p += n;
    len -= static_cast<size_t>(n);
    off += static_cast<uint64_t>(n);
  }
}

int open_out(const char* path, uint64_t size) {
  int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    std::perror(path);
    std::exit(1);
  }
  return fd;
}

void fill_random(Rng& r, uint8_t* p, size_t len) {
  for (size_t i = 0; i + 8 <= len; i += 8) {
    uint64_t x = r.next();
    std::memcpy(p + i, &x, 8);
  }
}

// Log-like text: compresses several times with deflate, not to nothing.
void fill_text(Rng& r, uint8_t* p, size_t len) {
  static const char* words[] = {"kernel",  "disk",   "sector", "read",  "write", "cache",
                                "block",   "error",  "device", "mount", "ext4",  "inode",
                                "journal", "commit", "flush",  "queue"};
  size_t i = 0;
  while (i < len) {
    char line[160];
    uint64_t x = r.next();
    int n = std::snprintf(
        line, sizeof line, "[%8llu.%06llu] %s: %s %s %llu %s\n",
        static_cast<unsigned long long>(x % 100000), static_cast<unsigned long long>(x >> 44),
        words[x & 15], words[(x >> 4) & 15], words[(x >> 8) & 15],
        static_cast<unsigned long long>((x >> 12) & 0xFFFF), words[(x >> 28) & 15]);
    size_t take = std::min(len - i, static_cast<size_t>(n));
    std::memcpy(p + i, line, take);
    i += take;
  }
}

int make_disk(const char* path, uint64_t size) {
  int fd = open_out(path, size);
  Rng r(42);
  const size_t kMax = 16u << 20;
  std::vector<uint8_t> buf(kMax);
  uint64_t off = 0;
  uint64_t by_type[4] = {0, 0, 0, 0};
  while (off < size) {
    uint64_t x = r.next();
    // 4 KiB << 0..12, times 1..3: many small chunks, a few large ones.
    uint64_t len = (uint64_t{4096} << (x % 13)) * (1 + (x >> 8) % 3);
    len = std::min<uint64_t>({len, kMax, size - off});
    // The type that is furthest behind its quarter, with some randomness.
    int type = static_cast<int>((x >> 16) % 4);
    for (int t = 0; t < 4; ++t) {
      if (by_type[t] + len < by_type[type] && (x >> 20) % 2) type = t;
    }
    auto* p = buf.data();
    switch (type) {
      case 0:
        fill_random(r, p, static_cast<size_t>(len));
        break;
      case 1:
        fill_text(r, p, static_cast<size_t>(len));
        break;
      case 2:
        std::memset(p, 0, static_cast<size_t>(len));
        break;
      case 3:
        break;  // hole
    }
    if (type != 3) pwrite_all(fd, p, static_cast<size_t>(len), off);
    by_type[type] += len;
    off += len;
  }
  ::close(fd);
  std::printf(
      "random %llu, text %llu, zeros %llu, holes %llu bytes\n",
      static_cast<unsigned long long>(by_type[0]), static_cast<unsigned long long>(by_type[1]),
      static_cast<unsigned long long>(by_type[2]), static_cast<unsigned long long>(by_type[3]));
  return 0;
}

int make_sparse(const char* path, uint64_t size, uint64_t data) {
  int fd = open_out(path, size);
  Rng r(7);
  const uint64_t piece = 1 << 20;
  std::vector<uint8_t> buf(piece);
  uint64_t pieces = std::max<uint64_t>(1, data / piece);
  uint64_t stride = size / pieces;
  for (uint64_t i = 0; i < pieces; ++i) {
    fill_random(r, buf.data(), buf.size());
    uint64_t off = (i * stride) & ~(piece - 1);
    pwrite_all(fd, buf.data(), buf.size(), std::min(off, size - piece));
  }
  ::close(fd);
  return 0;
}

int rand_read(const char* path, uint64_t count) {
  int fd = ::open(path, O_RDONLY);
  struct stat st;
  if (fd < 0 || ::fstat(fd, &st) != 0) {
    std::perror(path);
    return 1;
  }
  uint64_t blocks = static_cast<uint64_t>(st.st_size) / 4096;
  if (blocks == 0) return 1;
  Rng r(9);
  std::vector<uint8_t> buf(4096);
  auto t0 = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t b = r.next() % blocks;
    if (::pread(fd, buf.data(), 4096, static_cast<off_t>(b * 4096)) != 4096) {
      std::perror("pread");
      return 1;
    }
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%.0f %.1f\n", static_cast<double>(count) / s,
              static_cast<double>(count) * 4096 / s / 1e6);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "disk" && argc == 4) return make_disk(argv[2], parse_size(argv[3]));
  if (cmd == "sparse" && argc == 5)
    return make_sparse(argv[2], parse_size(argv[3]), parse_size(argv[4]));
  if (cmd == "randread" && argc == 4) return rand_read(argv[2], parse_size(argv[3]));
  std::fprintf(
      stderr,
      "usage: vdisk_mkbench disk PATH SIZE | sparse PATH SIZE DATA | randread PATH COUNT\n");
  return 2;
}
