#include "tests/support/test_support.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "formats/core/json.h"

namespace vdisk::test {

std::string sh_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

namespace {
std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

RunResult run(const std::string& cmdline) {
  TempDir io;
  std::string full = "( " + cmdline + " ) >" + io / "out" + " 2>" + io / "err" + " </dev/null";
  int status = std::system(full.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(io / "out");
  r.err = slurp(io / "err");
  return r;
}

std::string wait_until_catches(const std::string& pid_var, int signo) {
  const std::string pid = "$" + pid_var;
  return "i=0; while [ $i -lt 2000 ]; do "
         "m=$(awk '/^SigCgt/{print $2}' /proc/" +
         pid +
         "/status 2>/dev/null); "
         "if [ -n \"$m\" ] && [ \"$(readlink /proc/" +
         pid + "/exe)\" = " + sh_quote(VDISK_BIN) + " ] && [ $(( (0x$m >> " +
         std::to_string(signo - 1) +
         ") & 1 )) = 1 ]; then break; fi; "
         "sleep 0.01; i=$((i+1)); done; ";
}

RunResult run_vdisk(const std::string& args) {
  return run(std::string(VDISK_BIN) + " " + args);
}

std::string run_ok(const std::string& cmdline) {
  RunResult r = run(cmdline);
  INFO("command: " << cmdline << "\nstdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  return r.out;
}

TempDir::TempDir() {
  std::string base = VDISK_TEST_TMP;
  ::mkdir(base.c_str(), 0755);
  std::string tmpl = base + "/t-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::string cmd = "rm -rf " + sh_quote(path_);
  int rc = std::system(cmd.c_str());
  (void)rc;
}

std::string coreutils_digest(const std::string& tool, const std::string& path) {
  std::string out = run_ok(tool + " " + sh_quote(path));
  return out.substr(0, out.find(' '));
}

std::string parse_tagged_digest(const std::string& output, const std::string& tag) {
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(tag + " (", 0) == 0) {
      auto eq = line.rfind(" = ");
      if (eq != std::string::npos) return line.substr(eq + 3);
    }
  }
  return "";
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

void write_at(const std::string& path, uint64_t offset, const std::vector<uint8_t>& bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
  ::close(fd);
  REQUIRE(n == static_cast<ssize_t>(bytes.size()));
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::string s = slurp(path);
  return std::vector<uint8_t>(s.begin(), s.end());
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

uint64_t file_size(const std::string& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<uint64_t>(st.st_size);
}

uint64_t allocated_bytes_on_host(const std::string& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

std::vector<uint8_t> pattern_bytes(size_t len, uint32_t seed) {
  std::vector<uint8_t> out(len);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < len; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = static_cast<uint8_t>(x);
  }
  return out;
}

void make_sample_disk(const std::string& path, uint64_t size) {
  require_tool("sfdisk");
  run_ok("truncate -s " + std::to_string(size) + " " + sh_quote(path));
  run_ok(
      "printf 'label: dos\\nstart=2048, size=16384, type=83\\nstart=18432, type=83\\n' | sfdisk "
      "-q " +
      sh_quote(path));
  // Data in the first partition, a run of written zeros, data near the end.
  write_at(path, 1 << 20, pattern_bytes(300 * 1024 + 17, 1));
  write_at(path, (1 << 20) + 512 * 1024, std::vector<uint8_t>(256 * 1024, 0));
  write_at(path, size / 2 + 4096 * 3, pattern_bytes(1 << 20, 2));
  write_at(path, size - 8192, pattern_bytes(8192, 3));
}

void require_tool(const std::string& tool) {
  RunResult r = run("command -v " + sh_quote(tool));
  INFO("oracle tool '" << tool << "' is missing: run scripts/install-deps");
  REQUIRE(r.exit_code == 0);
}

std::string fuse_unavailable_reason() {
  if (::access("/dev/fuse", R_OK | W_OK) != 0) return "/dev/fuse is missing or not accessible";
  if (run("command -v fusermount3").exit_code != 0) return "fusermount3 is not installed";
  return "";
}

namespace {
std::vector<MapRun> map_runs(const std::string& json, bool qemu) {
  std::vector<MapRun> out;
  const Json parsed = Json::parse(json);
  for (const Json& e : parsed.as_array()) {
    std::string type;
    if (qemu) {
      const bool present = e.find("present")->as_bool(), data = e.find("data")->as_bool();
      type = !present ? "unallocated" : data ? "data" : "zero";
    } else {
      type = e.find("type")->as_string();
    }
    MapRun r{e.find("start")->as_u64(), e.find("length")->as_u64(), type,
             e.find("depth")->as_u64()};
    if (!out.empty() && out.back().type == r.type && out.back().depth == r.depth)
      out.back().length += r.length;
    else
      out.push_back(r);
  }
  return out;
}
}  // namespace

std::vector<MapRun> qemu_map_runs(const std::string& image, const std::string& extra,
                                  const std::string& cwd) {
  const std::string cd = cwd.empty() ? "" : "cd " + sh_quote(cwd) + " && ";
  return map_runs(run_ok(cd + "qemu-img map --output json " + extra + " " + sh_quote(image)), true);
}

std::vector<MapRun> vdisk_map_runs(const std::string& image, const std::string& extra) {
  return map_runs(
      run_ok(std::string(VDISK_BIN) + " map --output json " + extra + " " + sh_quote(image)),
      false);
}

void check_same_map(const std::vector<MapRun>& a, const std::vector<MapRun>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("run " << i << " at " << a[i].start);
    CHECK(a[i].start == b[i].start);
    CHECK(a[i].length == b[i].length);
    CHECK(a[i].type == b[i].type);
    CHECK(a[i].depth == b[i].depth);
  }
}

}  // namespace vdisk::test
