// The registry's round trip, in-process (MemEnv, no subprocess): for every
// format that can both write and read, every option set its writer declares
// (each value of each kEnum/kBool create option, each subformat, and the
// descriptor's roundtrip_options), a set of generated disks ("shapes") is
// written the way the converter writes (data with write(), zero runs with
// write_zeroes(), holes never written), opened again through the registry and
// judged by fuzz::check_device: extents tile the disk, answers agree, data
// reads back equal to the source, zero and unallocated extents read zeros,
// out-of-range requests are refused. Sizes a writer cannot make come from its
// descriptor (FormatDescriptor::size_rules), and their refusal is checked too.
// A format added to the registry is covered without editing this file.
//
// The oracle tests of each format (test_vmdk.cpp, test_vhd.cpp, ... and
// test_engine.cpp's registry walk through qemu-img) judge the same writers by
// other tools; this test is the one that reaches every option and shape.
#include <catch2/catch.hpp>
#include <numeric>
#include <sstream>

#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/registry.h"
#include "fuzz/device_contract.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

constexpr uint64_t kKiB = 1024, kMiB = 1024 * 1024;

uint64_t round_up(uint64_t v, uint64_t unit) {
  return div_round_up(v, unit) * unit;
}

// Every option set the writer declares, defaults first, each once.
std::vector<std::string> option_sets(const FormatDescriptor& f) {
  std::vector<std::string> sets = {""};
  auto add = [&](const std::string& s) {
    if (std::find(sets.begin(), sets.end(), s) == sets.end()) sets.push_back(s);
  };
  std::string default_sub;
  for (const OptionSpec& o : f.create_options)
    if (o.name == "subformat") default_sub = o.default_value;
  for (const std::string& sub : f.subformats)
    if (sub != default_sub) add("subformat=" + sub);
  for (const OptionSpec& o : f.create_options) {
    if (o.type == OptionType::kEnum) {
      for (const std::string& c : o.choices)
        if (c != o.default_value) add(o.name + "=" + c);
    } else if (o.type == OptionType::kBool) {
      const bool def = !o.default_value.empty() && parse_bool(o.default_value, o.name);
      add(o.name + (def ? "=off" : "=on"));
    }
  }
  for (const std::string& s : f.roundtrip_options) add(s);
  return sets;
}

// What the size rules that apply to one option set say together.
struct Sizes {
  uint64_t unit = 1;
  uint64_t min_size = 0;
  bool pads = false;
  std::string why;
};

Sizes sizes_for(const FormatDescriptor& f, const Options& opts) {
  Sizes s;
  for (const SizeRule& r : f.size_rules) {
    bool applies = true;
    if (!r.when.empty()) {
      const Options when = parse_options(r.when, f.create_options, f.name);
      for (const auto& [key, value] : when.values())
        if (opts.get_string(key) != value) applies = false;
    }
    if (!applies) continue;
    REQUIRE(r.unit > 0);
    s.unit = std::lcm(s.unit, r.unit);
    s.min_size = std::max(s.min_size, r.min_size);
    s.pads = s.pads || r.pads;
    s.why += (s.why.empty() ? "" : "; ") + r.why;
  }
  return s;
}

// One write of a shape, in offset order.
struct Piece {
  uint64_t offset = 0, length = 0;
  enum Kind { kData, kZeroes } kind = kData;
};

// A generated disk: its size, its content, and the writes that make it.
struct Shape {
  std::string name;
  uint64_t size = 0;
  std::vector<Piece> pieces;
  // Runs of zeros inside data pieces (written with write(), not as zeroes).
  std::vector<Piece> zero_runs;

  std::vector<uint8_t> content(uint32_t seed) const {
    std::vector<uint8_t> c(static_cast<size_t>(size), 0);
    for (const Piece& p : pieces) {
      if (p.kind != Piece::kData) continue;
      std::vector<uint8_t> b = pattern_bytes(static_cast<size_t>(p.length), seed + p.offset / 4096);
      std::copy(b.begin(), b.end(), c.begin() + static_cast<std::ptrdiff_t>(p.offset));
    }
    for (const Piece& z : zero_runs)
      std::fill_n(c.begin() + static_cast<std::ptrdiff_t>(z.offset), z.length, 0);
    return c;
  }
};

// The shapes for a writer that makes sizes in multiples of `unit` from
// `min_size`. Boundaries fall on 4 KiB (a multiple of every sector size) and
// the sizes are not a multiple of any format's block, so the last block of a
// block-based format is partial.
std::vector<Shape> shapes(const Sizes& s) {
  const uint64_t b = round_up(std::max<uint64_t>(s.min_size, 3 * kMiB + 192 * kKiB), s.unit);
  const uint64_t third = round_up(b / 3, 4 * kKiB);
  std::vector<Shape> out;
  if (s.min_size == 0) out.push_back({"empty disk", 0, {}, {}});
  const uint64_t smallest = round_up(std::max<uint64_t>(s.min_size, 1), s.unit);
  out.push_back({"smallest disk, all data", smallest, {{0, smallest}}, {}});
  out.push_back({"all unallocated", b, {}, {}});
  out.push_back({"all declared zero", b, {{0, b, Piece::kZeroes}}, {}});
  out.push_back({"all data", b, {{0, b}}, {}});
  out.push_back({"hole at the start", b, {{third, b - third}}, {}});
  out.push_back({"hole in the middle",
                 b,
                 {{0, third}, {third, third, Piece::kZeroes}, {2 * third, b - 2 * third}},
                 {}});
  out.push_back({"hole at the end", b, {{0, 2 * third}}, {}});
  out.push_back(
      {"hole in the middle never written", b, {{0, 4 * kKiB}, {b - 4 * kKiB, 4 * kKiB}}, {}});
  // Zero runs of a sector, a page, a 64 KiB grain plus a sector and 1 MiB,
  // inside data the writer receives as data.
  out.push_back({"zero runs inside data",
                 b,
                 {{0, b}},
                 {{4 * kKiB, 512},
                  {64 * kKiB, 4 * kKiB},
                  {256 * kKiB - 512, 64 * kKiB + 1024},
                  {kMiB, kMiB},
                  {b - 8 * kKiB, 4 * kKiB}}});
  return out;
}

// A size that is not a whole unit (for a unit of 1: one byte more than a
// round size), with data up to its last byte.
Shape odd_shape(const Sizes& s) {
  const uint64_t b =
      round_up(std::max<uint64_t>(s.min_size, 3 * kMiB), std::max<uint64_t>(s.unit, 4 * kKiB));
  const uint64_t size = b + 1;
  return {"odd size", size, {{0, 64 * kKiB}, {b - 4 * kKiB, size - (b - 4 * kKiB)}}, {}};
}

CreateRequest request(const FormatDescriptor& f, MemEnv& env, const std::string& path,
                      const std::string& opts, uint64_t size) {
  CreateRequest req;
  req.path = path;
  req.virtual_size = size;
  req.env = &env;
  req.options = parse_options(opts, f.create_options, f.name);
  req.warn = [](const std::string&) {};
  return req;
}

// Drives the writer the way the converter does: data in pieces of at most
// 1 MiB, declared zero runs as write_zeroes.
void write_shape(ImageWriter& w, const Shape& shape, const std::vector<uint8_t>& content) {
  for (const Piece& p : shape.pieces) {
    if (p.kind == Piece::kZeroes) {
      w.write_zeroes(p.offset, p.length);
      continue;
    }
    for (uint64_t at = p.offset; at < p.offset + p.length;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kMiB, p.offset + p.length - at));
      w.write(at, content.data() + at, n);
      at += n;
    }
  }
  w.finish();
}

std::string image_path(const FormatDescriptor& f) {
  return "out/disk." + (f.extensions.empty() ? f.name : f.extensions.front());
}

// Opens what the writer made through the registry (probing too) and judges
// it against `content` padded to the writer's virtual size.
// `opts`: the options it was written with (they may make it another format's
// image: FormatDescriptor::read_as).
void check_image(const FormatDescriptor& f, const std::string& opts, MemEnv& env,
                 const std::string& path, uint64_t virtual_size, std::vector<uint8_t> content) {
  const std::string read_name =
      f.read_as ? f.read_as(parse_options(opts, f.create_options, f.name)) : f.name;
  OpenOptions o;
  o.env = &env;
  o.warn = [](const std::string&) {};
  std::unique_ptr<File> file = env.open_read(path);
  const ProbeResult probed = probe_file(*file);
  REQUIRE(probed.best != nullptr);
  CHECK(probed.best->name == read_name);
  BlockDevicePtr dev = open_image(path, read_name, o);
  REQUIRE(dev->size() == virtual_size);
  REQUIRE(content.size() <= virtual_size);
  content.resize(static_cast<size_t>(virtual_size), 0);
  fuzz::DeviceCheck c;
  c.max_extents = SIZE_MAX;
  c.read_all = true;
  c.expected = content;
  try {
    fuzz::check_device(*dev, c);
  } catch (const fuzz::ContractViolation& v) {
    FAIL_CHECK(v.what());
  }
}

// Writes `shape` to `path` and checks the image, or checks the refusal when
// `refusal_expected`.
void round_trip(const FormatDescriptor& f, const std::string& opts, const Shape& shape,
                const std::string& path, bool allow_resize, uint64_t expect_size) {
  MemEnv env;
  CreateRequest req = request(f, env, path, opts, shape.size);
  req.allow_resize = allow_resize;
  const std::vector<uint8_t> content = shape.content(static_cast<uint32_t>(shape.size));
  std::unique_ptr<ImageWriter> w = f.create(req);
  REQUIRE(w->virtual_size() == expect_size);
  if (expect_size != shape.size) {
    // Rounded or padded: the user is told both sizes.
    std::string notes;
    for (const std::string& n : w->notes()) notes += n + "\n";
    CHECK_THAT(notes, Catch::Contains(std::to_string(shape.size)) &&
                          Catch::Contains(std::to_string(expect_size)));
  }
  write_shape(*w, shape, content);
  for (const std::string& out : w->output_files()) CHECK(env.exists(out));
  check_image(f, opts, env, path, expect_size, content);
}

// The writer must refuse `size` up front, with Error(kInvalidArgument)
// naming it.
void expect_refusal(const FormatDescriptor& f, const std::string& opts, uint64_t size,
                    const std::string& why) {
  INFO("a " << size << "-byte disk must be refused: " << why);
  MemEnv env;
  try {
    (void)f.create(request(f, env, image_path(f), opts, size));
    FAIL("the writer accepted it");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kInvalidArgument);
    CHECK_THAT(e.what(), Catch::Contains(std::to_string(size)));
  }
}

// All of one option set: every shape, the refused sizes, the odd size with
// and without allow_resize.
void option_set_round_trips(const FormatDescriptor& f, const std::string& opts) {
  const Sizes s = sizes_for(f, parse_options(opts, f.create_options, f.name));
  for (const Shape& shape : shapes(s)) {
    INFO("shape: " << shape.name << " (" << shape.size << " bytes)");
    round_trip(f, opts, shape, image_path(f), false, shape.size);
  }
  if (s.min_size > 0) expect_refusal(f, opts, 0, s.why);
  const Shape odd = odd_shape(s);
  INFO("shape: " << odd.name << " (" << odd.size << " bytes)");
  if (s.unit == 1) {
    round_trip(f, opts, odd, image_path(f), false, odd.size);
    return;
  }
  const uint64_t rounded = round_up(odd.size, s.unit);
  if (s.pads) {
    // Either refused like any off-unit size, or padded with a note.
    MemEnv env;
    try {
      (void)f.create(request(f, env, image_path(f), opts, odd.size));
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kInvalidArgument);
      CHECK_THAT(e.what(), Catch::Contains(std::to_string(odd.size)));
    }
  } else {
    expect_refusal(f, opts, odd.size, s.why);
  }
  round_trip(f, opts, odd, image_path(f), true, rounded);
}

bool can_round_trip(const FormatDescriptor& f) {
  return f.create && f.open;
}

}  // namespace

TEST_CASE("round trip: every writer, option set and shape reads back through the registry",
          "[roundtrip]") {
  size_t formats = 0;
  for (const FormatDescriptor* f : builtin_formats()) {
    if (!can_round_trip(*f)) continue;
    ++formats;
    for (const std::string& opts : option_sets(*f)) {
      INFO("format " << f->name << ", options '" << opts << "'");
      option_set_round_trips(*f, opts);
    }
  }
  CHECK(formats >= 5);  // raw, vmdk, vhd, vhdx, vdi
}

TEST_CASE("round trip: writers that can stream write standard output", "[roundtrip]") {
  size_t streamed_formats = 0;
  for (const FormatDescriptor* f : builtin_formats()) {
    if (!can_round_trip(*f) || !f->can_stream) continue;
    size_t streamed = 0;
    for (const std::string& opts : option_sets(*f)) {
      INFO("format " << f->name << ", options '" << opts << "' to standard output");
      const Sizes s = sizes_for(*f, parse_options(opts, f->create_options, f->name));
      for (const Shape& shape : shapes(s)) {
        INFO("shape: " << shape.name);
        MemEnv env;
        const std::vector<uint8_t> content = shape.content(7);
        std::unique_ptr<ImageWriter> w;
        try {
          w = f->create(request(*f, env, "-", opts, shape.size));
        } catch (const Error& e) {
          // An option set that needs a seekable file says so up front.
          CHECK(e.kind() == ErrorKind::kInvalidArgument);
          CHECK_THAT(e.what(), Catch::Contains("standard output"));
          break;
        }
        write_shape(*w, shape, content);
        const std::vector<uint8_t>* bytes = env.contents("-");
        REQUIRE(bytes != nullptr);
        env.add_file(image_path(*f), *bytes);
        check_image(*f, opts, env, image_path(*f), w->virtual_size(), content);
        ++streamed;
      }
    }
    INFO("format " << f->name << " declares can_stream");
    CHECK(streamed > 0);
    ++streamed_formats;
  }
  CHECK(streamed_formats >= 2);  // raw, vmdk streamOptimized
}

TEST_CASE("round trip: writers make the same bytes from the same clock and seed", "[roundtrip]") {
  // What the golden files (test_golden.cpp) rely on: a writer's output is a
  // function of its request, the writes, and the Env's clock and random source.
  for (const FormatDescriptor* f : builtin_formats()) {
    if (!can_round_trip(*f)) continue;
    for (const std::string& opts : option_sets(*f)) {
      INFO("format " << f->name << ", options '" << opts << "'");
      const Sizes s = sizes_for(*f, parse_options(opts, f->create_options, f->name));
      const Shape shape = shapes(s).back();
      const std::vector<uint8_t> content = shape.content(3);
      std::vector<std::vector<uint8_t>> runs[2];
      for (int i = 0; i < 2; ++i) {
        MemEnv env;
        env.seed_random(42);
        env.set_clock(1234567890);
        std::unique_ptr<ImageWriter> w =
            f->create(request(*f, env, image_path(*f), opts, shape.size));
        write_shape(*w, shape, content);
        for (const std::string& out : w->output_files()) runs[i].push_back(*env.contents(out));
      }
      CHECK(runs[0] == runs[1]);
    }
  }
}
