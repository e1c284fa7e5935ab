// make install / make package / libvdisk, tried as a user would: install
// into a scratch root (DESTDIR), build the Debian package with CPack and
// unpack it with dpkg -x, and run vdisk from there; read the man page with
// man(1); complete with bash; build the libvdisk example with pkg-config
// and check its block status against `qemu-img map`.
#include <catch2/catch.hpp>
#include <sstream>

#include "tests/support/test_support.h"

using namespace vdisk::test;

namespace {

const std::string kBuild = std::string(VDISK_BIN).substr(0, std::string(VDISK_BIN).rfind('/'));

// Installs the build tree under `root` with prefix `prefix`, as
// `make install DESTDIR=root PREFIX=prefix` does.
void install_into(const std::string& root, const std::string& prefix) {
  run_ok("DESTDIR=" + sh_quote(root) + " cmake --install " + sh_quote(kBuild) + " --prefix " +
         sh_quote(prefix) + " >/dev/null");
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

}  // namespace

TEST_CASE("install: DESTDIR install has the binary, vdisk(1) and completion; man renders it",
          "[install]") {
  require_tool("man");
  TempDir dir;
  const std::string root = dir / "root";
  install_into(root, "/usr/local");
  const std::string bin = root + "/usr/local/bin/vdisk";
  RunResult v = run(sh_quote(bin) + " --version");
  CHECK(v.exit_code == 0);
  CHECK(v.out.find("vdisk ") == 0);

  const std::string page = root + "/usr/local/share/man/man1/vdisk.1";
  REQUIRE(file_exists(page));
  REQUIRE(file_exists(root + "/usr/local/share/bash-completion/completions/vdisk"));
  REQUIRE(file_exists(root + "/usr/local/share/zsh/site-functions/_vdisk"));
  REQUIRE(file_exists(root + "/usr/local/lib/libvdisk.a"));
  REQUIRE(file_exists(root + "/usr/local/lib/pkgconfig/vdisk.pc"));
  REQUIRE(file_exists(root + "/usr/local/include/vdisk/formats/registry.h"));

  // man(1) renders it without warnings, and every command and every option
  // that `vdisk COMMAND -h` shows is in it.
  RunResult m = run("MANWIDTH=100 man --warnings -l " + sh_quote(page) + " | col -b");
  INFO(m.err);
  CHECK(m.exit_code == 0);
  CHECK(m.err.empty());
  for (const std::string& cmd : lines(run_ok(sh_quote(bin) + " --complete"))) {
    INFO("command " << cmd);
    CHECK(m.out.find("vdisk " + cmd) != std::string::npos);
    const std::string help = run_ok(sh_quote(bin) + " " + cmd + " -h");
    for (const std::string& opt : lines(run_ok(sh_quote(bin) + " --complete " + cmd))) {
      if (opt.rfind("--", 0) != 0) continue;
      INFO("option " << opt);
      CHECK(help.find(opt) != std::string::npos);
      CHECK(m.out.find(opt) != std::string::npos);
    }
  }
  // `vdisk help resize` shows the command's page.
  RunResult h = run(sh_quote(bin) + " help resize");
  CHECK(h.exit_code == 0);
  CHECK(h.out.find("vdisk resize - ") == 0);
  CHECK(h.out.find("--shrink") != std::string::npos);
}

TEST_CASE("install: bash completes commands, options, -O formats and -o keys", "[install]") {
  require_tool("bash");
  const std::string script = std::string(VDISK_SOURCE_DIR) + "/completion/vdisk.bash";
  auto complete = [&](const std::string& words) {
    // COMP_WORDS as bash would split the line; the cursor on the last word.
    return run_ok("bash -c " + sh_quote("source " + sh_quote(script) + "; COMP_WORDS=(" + words +
                                        "); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _vdisk; "
                                        "printf '%s\\n' \"${COMPREPLY[@]}\""));
  };
  const std::string bin = sh_quote(VDISK_BIN);
  CHECK(complete(bin + " con") == "convert\n");
  CHECK(complete(bin + " res") == "resize\n");
  CHECK(complete(bin + " resize --sh") == "--shrink\n");
  const std::string formats = complete(bin + " convert -O ''");
  CHECK(formats.find("vmdk\n") != std::string::npos);
  CHECK(formats.find("qcow2\n") != std::string::npos);
  CHECK(complete(bin + " convert -O vmdk -o sub") == "subformat=\n");
  CHECK(complete(bin + " help inf") == "info\n");
}

TEST_CASE("install: zsh reads the completion script", "[install]") {
  require_tool("zsh");
  RunResult r = run("zsh -n " + sh_quote(std::string(VDISK_SOURCE_DIR) + "/completion/_vdisk"));
  INFO(r.err);
  CHECK(r.exit_code == 0);
}

TEST_CASE("install: make package builds a .deb that runs from a scratch root", "[install]") {
  require_tool("cpack");
  require_tool("dpkg-deb");
  TempDir dir;
  run_ok("cd " + sh_quote(kBuild) + " && cpack -G DEB -B " + sh_quote(dir / "pkg") + " >/dev/null");
  const std::string deb = run_ok("ls " + sh_quote(dir / "pkg") + "/*.deb | head -1");
  REQUIRE(!deb.empty());
  const std::string path = deb.substr(0, deb.find('\n'));
  const std::string depends = run_ok("dpkg-deb -f " + sh_quote(path) + " Depends");
  INFO("Depends: " << depends);
  CHECK(depends.find("libfuse3") != std::string::npos);
  CHECK(depends.find("libboost-program-options") != std::string::npos);
  CHECK(depends.find("fuse3") != std::string::npos);
  const std::string contents = run_ok("dpkg-deb -c " + sh_quote(path));
  CHECK(contents.find("./usr/share/man/man1/vdisk.1") != std::string::npos);
  CHECK(contents.find("./usr/share/bash-completion/completions/vdisk") != std::string::npos);
  CHECK(contents.find("./usr/share/zsh/vendor-completions/_vdisk") != std::string::npos);
  const std::string root = dir / "root";
  run_ok("dpkg -x " + sh_quote(path) + " " + sh_quote(root));
  RunResult v = run(sh_quote(root + "/usr/bin/vdisk") + " --version");
  CHECK(v.exit_code == 0);
  CHECK(v.out.find("vdisk ") == 0);
}

TEST_CASE("install: the libvdisk example builds with pkg-config and maps like qemu-img",
          "[install]") {
  require_tool("qemu-img");
  require_tool("qemu-io");
  require_tool("pkg-config");
  TempDir dir;
  const std::string root = dir / "root";
  install_into(root, "/usr/local");
  const std::string pc = "PKG_CONFIG_PATH=" + sh_quote(root + "/usr/local/lib/pkgconfig");
  const std::string example = dir / "block_status";
  run_ok("c++ -O1 -o " + sh_quote(example) + " " +
         sh_quote(std::string(VDISK_SOURCE_DIR) + "/examples/block_status.cpp") + " $(" + pc +
         " pkg-config --cflags --libs vdisk)");

  const std::string img = dir / "d.qcow2";
  run_ok("qemu-img create -q -f qcow2 " + sh_quote(img) + " 8M");
  run_ok("qemu-io -c 'write -P 1 64k 128k' -c 'write -z 1M 64k' -c 'write -P 2 7M 4k' " +
         sh_quote(img));
  std::vector<MapRun> mine;
  for (const std::string& l : lines(run_ok(sh_quote(example) + " " + sh_quote(img)))) {
    std::istringstream in(l);
    MapRun r;
    in >> r.start >> r.length >> r.type;
    if (!mine.empty() && mine.back().type == r.type)
      mine.back().length += r.length;
    else
      mine.push_back(r);
  }
  check_same_map(qemu_map_runs(img), mine);
}
