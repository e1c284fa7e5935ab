// The command line as users meet it: arguments refused before any work, in
// one line that names the option as typed; "did you mean"; `-o help` from the
// format descriptors; help and listings wrapped to 80 columns off a
// terminal; counted nouns; the progress bar on a terminal (util-linux
// `script` gives it one). Oracles: sha256sum, cmp, xorriso.
#include <catch2/catch.hpp>
#include <sstream>

#include "formats/core/json.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

const uint64_t kMiB = 1024 * 1024;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The command names `vdisk -h` lists.
std::vector<std::string> command_names() {
  RunResult r = run_vdisk("-h");
  REQUIRE(r.exit_code == 0);
  std::vector<std::string> names;
  bool in_list = false;
  for (const std::string& line : lines_of(r.out)) {
    if (line == "commands:") {
      in_list = true;
      continue;
    }
    if (in_list && line.empty()) break;
    if (in_list && line.size() > 2 && line[2] != ' ')
      names.push_back(line.substr(2, line.find(' ', 2) - 2));
  }
  REQUIRE(names.size() >= 10);
  return names;
}

}  // namespace

TEST_CASE("arguments are refused before any work, in one line naming the option", "[cli][args]") {
  TempDir dir;
  const std::string src = dir / "src.img", out = dir / "out.img";
  make_sample_disk(src, 21 * kMiB - 512 * 5);  // an azure VHD pads this to 21 MiB
  const std::string s = sh_quote(src), o = sh_quote(out);
  struct Case {
    std::string args;
    std::vector<std::string> says;
  };
  const std::vector<Case> cases = {
      {"convert --hash '' " + s + " " + o, {"--hash"}},
      {"convert --hash ,,, " + s + " " + o, {"--hash", "empty name"}},
      {"convert --hash md5,,sha1 " + s + " " + o, {"--hash", "empty name"}},
      {"convert --hash none,sha256 " + s + " " + o, {"--hash", "'none' cannot be combined"}},
      {"hash --algo '' " + s, {"--algo"}},
      {"convert --size -5 - " + o, {"--size", "'-5'"}},
      {"convert --size 5X - " + o, {"--size", "5X"}},
      {"hash --size=-1 -", {"--size"}},
      {"convert --size 1M " + s + " " + o, {"--size", "standard input"}},
      {"convert " + s + " ''", {"destination (DST) is empty"}},
      {"convert '' " + o, {"source (SRC) is empty"}},
      {"convert " + s, {"missing destination: vdisk convert -O FMT SRC DST"}},
      {"convert", {"missing source: vdisk convert -O FMT SRC DST"}},
      {"convert " + s + " " + o + " extra", {"too many arguments"}},
      {"convert --hash-file '' " + s + " " + o, {"empty value for --hash-file"}},
      {"convert -O '' " + s + " " + o, {"empty value for -O"}},
      {"convert --output-format '' " + s + " " + o, {"empty value for --output-format"}},
      {"convert --hash-file - " + s + " -", {"--hash-file"}},
      {"convert --verify " + s + " -", {"--verify"}},
      // The output would be padded: --verify without a hash taken during the
      // copy cannot check it, and says so before copying anything.
      {"convert --verify --hash none -O vhd -o target=azure " + s + " " + o,
       {"--verify", "resized"}},
      {"info", {"missing image: vdisk info IMAGE"}},
      {"hash", {"missing image: vdisk hash IMAGE"}},
      {"verify --expect md5:0", {"missing image"}},
      {"compare " + s, {"missing second image"}},
      {"mount " + s, {"missing mount point: vdisk mount IMAGE MOUNTPOINT"}},
      {"unmount", {"missing mount point"}},
      {"extract " + s, {"missing -C: vdisk extract"}},
      {"mkiso " + sh_quote(dir.path()), {"missing -o: vdisk mkiso DIR -o OUT.iso"}},
      {"ls --partition -1 " + s, {"--partition", "'-1'"}},
      {"ls --partition 1x " + s, {"--partition"}},
      {"ls --partition 4294967296 " + s, {"--partition"}},
      {"convert -t none " + s + " " + o, {"cache mode"}},
      {"convert --progress=sideways " + s + " " + o, {"--progress"}},
  };
  for (const Case& c : cases) {
    INFO("vdisk " << c.args);
    RunResult r = run_vdisk(c.args);
    INFO(r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());  // nothing was converted, hashed or listed
    CHECK(r.err.rfind("vdisk", 0) == 0);
    CHECK(lines_of(r.err).size() == 1);
    for (const std::string& want : c.says) CHECK_THAT(r.err, Catch::Contains(want));
    // Never the keys behind the positional arguments.
    for (const char* key : {"--src", "--dst", "--image", "--mountpoint", "'--a'", "'--b'", "--dir"})
      CHECK_THAT(r.err, !Catch::Contains(key));
    CHECK_FALSE(file_exists(out));
  }
  CHECK(run_ok("ls -A " + sh_quote(dir.path())) == "src.img\n");
}

TEST_CASE("sizes take suffixes, --size 1M reads standard input like --size 1048576",
          "[cli][args]") {
  TempDir dir;
  const std::string in = dir / "in.raw";
  write_file(in, pattern_bytes(kMiB, 7));
  for (const char* size : {"1M", "1m", "1MiB", "1024K", "2048S", "1048576"}) {
    INFO(size);
    const std::string out = dir / "out.raw";
    RunResult r = run("cat " + sh_quote(in) + " | " + std::string(VDISK_BIN) + " convert --size " +
                      size + " - " + sh_quote(out));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    run_ok("cmp " + sh_quote(in) + " " + sh_quote(out));
    CHECK(parse_tagged_digest(r.out, "SHA256") == coreutils_digest("sha256sum", in));
    std::remove(out.c_str());
  }
  // A size that disagrees with the stream is the stream's error, not a wrap.
  RunResult big = run("cat " + sh_quote(in) + " | " + std::string(VDISK_BIN) + " hash --size 2M -");
  CHECK(big.exit_code == 2);
}

TEST_CASE("unknown commands and options answer 'did you mean'", "[cli][args]") {
  struct Case {
    std::string args;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"conver", "did you mean 'convert'"},
      {"hsah", "did you mean 'hash'"},
      {"mout", "did you mean 'mount'"},
      {"unmout", "did you mean 'unmount'"},
      {"conv", "did you mean 'convert'"},  // an unambiguous prefix
      {"convert --forse a b", "unknown option --forse; did you mean '--force'"},
      {"convert --verfy a b", "did you mean '--verify'"},
      {"hash --algos md5 a", "did you mean '--algo'"},
      {"mount --forground a b", "did you mean '--foreground'"},
  };
  for (const Case& c : cases) {
    INFO("vdisk " << c.args);
    RunResult r = run_vdisk(c.args);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(c.says));
    CHECK(lines_of(r.err).size() == 1);  // not the whole usage
    CHECK(r.out.empty());
  }
  // Nothing close: no suggestion, still one line.
  for (const char* args : {"frobnicate", "convert --zzzzzz a b"}) {
    INFO(args);
    RunResult r = run_vdisk(args);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, !Catch::Contains("did you mean"));
    CHECK(lines_of(r.err).size() == 1);
  }
}

TEST_CASE("convert -o help lists every -o option a writer declares", "[cli][args]") {
  RunResult f = run_vdisk("formats --output json");
  REQUIRE(f.exit_code == 0);
  size_t writers = 0;
  const Json formats = Json::parse(f.out);
  for (const Json& fmt : formats.as_array()) {
    // Containers recognised only to be refused are listed too: not formats.
    if (const Json* only = fmt.find("recognised_only"); only && only->as_bool()) continue;
    const std::string name = fmt.find("name")->as_string();
    INFO(name);
    RunResult r = run_vdisk("convert -O " + name + " -o help");
    if (!fmt.find("write")->as_bool()) {
      CHECK(r.exit_code == 2);
      CHECK_THAT(r.err, Catch::Contains("cannot be written"));
      continue;
    }
    ++writers;
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const Json::Array& opts = fmt.find("create_options")->as_array();
    if (opts.empty()) CHECK_THAT(r.out, Catch::Contains("no -o options"));
    for (const Json& o : opts) {
      CHECK_THAT(r.out, Catch::Contains("-o " + o.find("name")->as_string() + "="));
      if (const Json* choices = o.find("choices")) {
        for (const Json& c : choices->as_array()) CHECK_THAT(r.out, Catch::Contains(c.as_string()));
      }
    }
    for (const std::string& line : lines_of(r.out)) CHECK(line.size() <= 80);
    // The qemu-img spelling, and help among other options.
    CHECK(run_vdisk("convert -O " + name + " -o '?'").out == r.out);
    CHECK(run_vdisk("convert -O " + name + " -o x=1,help").out == r.out);
  }
  CHECK(writers >= 4);
}

TEST_CASE("help, usage and listings fit 80 columns when not on a terminal", "[cli][args]") {
  std::vector<std::string> outputs = {"-h", "formats"};
  for (const std::string& c : command_names()) outputs.push_back(c + " -h");
  for (const std::string& args : outputs) {
    INFO("vdisk " << args);
    RunResult r = run_vdisk(args);
    REQUIRE(r.exit_code == 0);
    CHECK(lines_of(r.out).size() > 2);
    for (const std::string& line : lines_of(r.out)) {
      INFO(line);
      // Columns, not bytes: "…" is one column and three bytes.
      size_t columns = 0;
      for (unsigned char ch : line) columns += (ch & 0xC0) != 0x80;
      CHECK(columns <= 80);
    }
  }
  // The positional arguments are listed by their usage names, not as options.
  RunResult h = run_vdisk("convert -h");
  CHECK_THAT(h.out, Catch::Contains("arguments:") && Catch::Contains("  SRC ") &&
                        Catch::Contains("  DST "));
  CHECK_THAT(h.out, !Catch::Contains("--src") && !Catch::Contains("--dst"));
  RunResult m = run_vdisk("mount -h");
  CHECK_THAT(m.out, !Catch::Contains("--mountpoint") && !Catch::Contains("--image"));
  // `vdisk help CMD` is the command's page: its one-line summary, then
  // `vdisk CMD -h`.
  CHECK_THAT(run_vdisk("help convert").out,
             Catch::StartsWith("vdisk convert - ") && Catch::EndsWith(h.out));
}

TEST_CASE("counts read as English, 1 file and 2 files", "[cli][args]") {
  require_tool("xorriso");
  TempDir dir;
  run_ok("mkdir -p " + sh_quote(dir / "one") + " && echo hi > " + sh_quote(dir / "one/a.txt"));
  const std::string iso = dir / "one.iso";
  run_ok("xorriso -as mkisofs -R -quiet -o " + sh_quote(iso) + " " + sh_quote(dir / "one") +
         " 2>/dev/null");
  RunResult x = run_vdisk("extract " + sh_quote(iso) + " -C " + sh_quote(dir / "out"));
  INFO(x.err);
  REQUIRE(x.exit_code == 0);
  CHECK_THAT(x.err, Catch::Contains("extracted 1 file, 0 directories, 0 symlinks"));
  run_ok("cmp " + sh_quote(dir / "one/a.txt") + " " + sh_quote(dir / "out/a.txt"));

  run_ok("mkdir -p " + sh_quote(dir / "two/d") + " && echo a > " + sh_quote(dir / "two/x") +
         " && echo b > " + sh_quote(dir / "two/d/y"));
  RunResult m = run_vdisk("mkiso " + sh_quote(dir / "two") + " -o " + sh_quote(dir / "two.iso"));
  INFO(m.err);
  REQUIRE(m.exit_code == 0);
  CHECK_THAT(m.err, Catch::Contains("2 files, "));
  CHECK_THAT(m.err, !Catch::Contains("1 directories") && !Catch::Contains("1 files"));
}

TEST_CASE("progress in binary units, the bar redrawn in place at a fixed width", "[cli][args]") {
  require_tool("script");
  TempDir dir;
  const std::string src = dir / "src.img";
  make_sample_disk(src, 64 * kMiB);
  // Off a terminal: one summary line a phase.
  RunResult plain = run_vdisk("convert -p " + sh_quote(src) + " " + sh_quote(dir / "a.img"));
  REQUIRE(plain.exit_code == 0);
  CHECK_THAT(plain.err, Catch::Contains(" MiB/s)") && !Catch::Contains("MB/s"));
  // On a terminal (script(1) runs vdisk on a pseudo-terminal): the bar.
  RunResult tty = run("script -qec " +
                      sh_quote(std::string(VDISK_BIN) + " convert -p " + sh_quote(src) + " " +
                               sh_quote(dir / "b.img")) +
                      " /dev/null");
  INFO(tty.out);
  REQUIRE(tty.exit_code == 0);
  CHECK_THAT(tty.out, Catch::Contains("MiB/s") && !Catch::Contains("MB/s"));
  // Every redraw: carriage return, the fields, then "erase to end of line".
  std::vector<size_t> widths;
  size_t pos = 0;
  while ((pos = tty.out.find("\rconverting [", pos)) != std::string::npos) {
    const size_t end = tty.out.find("\033[K", pos);
    REQUIRE(end != std::string::npos);
    widths.push_back(end - pos);
    pos = end;
  }
  REQUIRE(widths.size() >= 2);  // the first and the final draw at least
  for (size_t w : widths) CHECK(w == widths[0]);
  run_ok("cmp " + sh_quote(src) + " " + sh_quote(dir / "b.img"));
}
