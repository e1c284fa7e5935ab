// `vdisk verify IMAGE [--expect ALGO:HEX | --hash-file REPORT.json]`: re-hashes
// an image and compares with what the user, a report or (with neither) the
// image itself says it holds; pieces whose stored checksums fail (E01
// chunks) are listed and make the verification fail.
#include <cstdio>
#include <mutex>

#include "cli/cli.h"
#include "converters/convert.h"
#include "formats/core/error.h"
#include "formats/core/file.h"

namespace vdisk::cli {

namespace {

// One content a report vouches for: its hashes and its size.
struct Expectation {
  std::string what;
  std::vector<HashValue> hashes;
  std::optional<uint64_t> size;
};

size_t hex_length(HashAlgo a) {
  switch (a) {
    case HashAlgo::kMd5:
      return 32;
    case HashAlgo::kSha1:
      return 40;
    case HashAlgo::kSha256:
      return 64;
  }
  return 0;
}

HashValue parse_hash(const std::string& algo_name, std::string hex, const std::string& where) {
  std::vector<HashAlgo> a = parse_hash_algos(algo_name);
  if (a.size() != 1)
    throw UsageError(where + ": '" + algo_name + "' is not one of md5, sha1, sha256");
  for (auto& c : hex) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  bool ok = hex.size() == hex_length(a[0]);
  for (char c : hex) ok = ok && std::isxdigit(static_cast<unsigned char>(c));
  if (!ok) {
    throw UsageError(where + ": " + algo_name + " digest '" + hex + "' is not " +
                     std::to_string(hex_length(a[0])) + " hexadecimal digits");
  }
  return HashValue{a[0], hex};
}

std::vector<HashValue> hashes_of(const Json* j, const std::string& where) {
  std::vector<HashValue> out;
  if (!j) return out;
  if (!j->is_object())
    throw Error(ErrorKind::kInvalidArgument, where, std::nullopt, "hashes are not an object");
  for (auto& [k, v] : j->as_object()) {
    if (!v.is_string())
      throw Error(ErrorKind::kInvalidArgument, where, std::nullopt, k + " is not a string");
    out.push_back(parse_hash(k, v.as_string(), where));
  }
  return out;
}

std::optional<uint64_t> size_of(const Json* obj) {
  if (!obj || !obj->is_object()) return std::nullopt;
  const Json* s = obj->find("virtual_size");
  if (!s || !s->is_number()) return std::nullopt;
  return s->as_u64();
}

// Every content a report vouches for: the source as stored, the source with
// its unrescued areas as zeros, and the destination of a conversion.
std::vector<Expectation> expectations_of_report(const std::string& path) {
  std::unique_ptr<File> f = Env::posix().open_read(path);
  if (f->size() > (64u << 20))
    throw Error(ErrorKind::kInvalidArgument, path, std::nullopt, "report is too large");
  std::string text(static_cast<size_t>(f->size()), '\0');
  if (!text.empty()) f->read_at(0, text.data(), text.size());
  Json rep;
  try {
    rep = Json::parse(text);
  } catch (const Error& e) {
    throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                "not a vdisk report: " + e.message());
  }
  if (!rep.is_object())
    throw Error(ErrorKind::kInvalidArgument, path, std::nullopt, "not a vdisk report");
  std::vector<Expectation> out;
  std::optional<uint64_t> src_size = size_of(&rep);
  Expectation src{"the source as stored", hashes_of(rep.find("hashes"), path), src_size};
  if (!src.hashes.empty()) out.push_back(src);
  const Json* scope = rep.find("hashes_zero_filled_scope");
  Expectation zero{scope && scope->is_string() ? scope->as_string()
                                               : "the source with its unrescued areas as zeros",
                   hashes_of(rep.find("hashes_zero_filled"), path), src_size};
  if (!zero.hashes.empty()) out.push_back(zero);
  if (const Json* d = rep.find("destination"); d && d->is_object()) {
    Expectation dst{"the conversion's destination", hashes_of(d->find("hashes"), path), size_of(d)};
    if (!dst.hashes.empty()) out.push_back(dst);
  }
  if (out.empty())
    throw Error(ErrorKind::kInvalidArgument, path, std::nullopt, "the report holds no hashes");
  return out;
}

}  // namespace

int cmd_verify(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_open_options(desc);
  add_progress_option(desc);
  add_read_error_options(desc);
  desc.add_options()("expect", po::value<std::vector<std::string>>()->composing(),
                     "ALGO:HEX the image must hash to (may repeat)")(
      "hash-file", po::value<std::string>(),
      "a report of 'vdisk convert' or 'vdisk hash' (--hash-file)")(
      "image", po::value<std::string>()->required(), "the image");
  po::positional_options_description pos;
  pos.add("image", 1);
  po::variables_map vm;
  if (!parse_args(
          "verify",
          "[-f FMT] IMAGE [--expect ALGO:HEX ... | --hash-file REPORT.json] [-p|--progress json] "
          "[--on-read-error stop|continue [--error-map OUT.map]]",
          desc, pos, args, vm)) {
    return kExitOk;
  }
  const bool has_expect = vm.count("expect") != 0, has_report = vm.count("hash-file") != 0;
  if (has_expect && has_report)
    throw UsageError("give either --expect ALGO:HEX or --hash-file REPORT.json, not both");
  const OnReadError on_read_error = read_error_policy_from(vm, false, false);
  const std::string image = vm["image"].as<std::string>();
  // Damaged pieces of formats that checksum their content (E01 chunks) are
  // listed after one full pass instead of stopping it.
  std::mutex damage_mu;
  std::vector<DamagedData> damage;
  uint64_t damage_count = 0;
  OpenOptions open_opts = open_options_from(vm);
  open_opts.on_damaged_data = [&](const DamagedData& d) {
    std::lock_guard<std::mutex> lock(damage_mu);
    if (++damage_count <= 20) damage.push_back(d);
  };
  BlockDevicePtr dev =
      open_image(image, vm.count("format") ? vm["format"].as<std::string>() : "", open_opts);
  std::vector<Expectation> candidates;
  if (!has_expect && !has_report) {
    // The hashes the image itself stores (an E01's MD5 and SHA-1).
    Expectation e{"the hashes stored in the image", {}, std::nullopt};
    for (const StoredDigest& d : dev->stored_digests()) {
      e.hashes.push_back(parse_hash(d.algo, d.hex, image + " (" + d.where + ")"));
    }
    if (e.hashes.empty()) {
      throw UsageError(image +
                       " stores no hashes of its own: give --expect ALGO:HEX or --hash-file "
                       "REPORT.json");
    }
    candidates.push_back(e);
  } else if (has_expect) {
    Expectation e{"the expected digests", {}, std::nullopt};
    for (const std::string& x : vm["expect"].as<std::vector<std::string>>()) {
      size_t colon = x.find(':');
      if (colon == std::string::npos) throw UsageError("--expect '" + x + "' is not ALGO:HEX");
      e.hashes.push_back(parse_hash(x.substr(0, colon), x.substr(colon + 1), "--expect"));
    }
    candidates.push_back(e);
  } else {
    candidates = expectations_of_report(vm["hash-file"].as<std::string>());
  }
  // Hash once with every algorithm any candidate names.
  std::vector<HashAlgo> algos;
  for (auto& c : candidates) {
    for (auto& h : c.hashes) {
      if (std::find(algos.begin(), algos.end(), h.algo) == algos.end()) algos.push_back(h.algo);
    }
  }
  auto progress = progress_from(vm);
  CopyOptions o;
  o.algos = algos;
  o.cancel = &cancel_flag();
  o.phase = "verifying";
  o.progress = progress.get();
  o.on_read_error = on_read_error;
  o.read_error_hint = read_error_hint(on_read_error, false);
  CopyResult r = copy_device(*dev, nullptr, o);
  // With read errors only the image with zeros there was hashed: it can
  // match a report's hashes_zero_filled (the same ranges lost when the report
  // was made) or a conversion's destination, never the image as stored, and
  // the exit status says data was lost whatever matched.
  const int read_status =
      finish_read_errors(vm, image, r, "hashed as zeros", nullptr, /*force=*/false);
  const std::vector<HashValue>& computed = r.hashes.empty() ? r.hashes_zero_filled : r.hashes;
  auto got = [&](HashAlgo a) -> const std::string& {
    for (auto& h : computed) {
      if (h.algo == a) return h.hex;
    }
    throw std::logic_error("hash missing");
  };
  if (damage_count) {
    std::printf("verify: %s: %llu damaged chunk%s (read as zeros when they do not decode):\n",
                image.c_str(), static_cast<unsigned long long>(damage_count),
                damage_count == 1 ? "" : "s");
    for (const DamagedData& d : damage) {
      std::printf("  media offset %s, %llu bytes: %s\n", hex_offset(d.offset).c_str(),
                  static_cast<unsigned long long>(d.length), d.message.c_str());
    }
    if (damage_count > damage.size()) {
      std::printf("  ... and %llu more\n",
                  static_cast<unsigned long long>(damage_count - damage.size()));
    }
  }
  for (const Expectation& c : candidates) {
    bool ok = !c.size || *c.size == r.virtual_size;
    for (auto& h : c.hashes) ok = ok && got(h.algo) == h.hex;
    if (ok && damage_count) {
      std::printf("verify: FAILED: %s matches %s, but its chunks are damaged\n", image.c_str(),
                  c.what.c_str());
      return kExitDifferent;
    }
    if (ok) {
      std::printf("verify: OK: %s matches %s (", image.c_str(), c.what.c_str());
      for (size_t i = 0; i < c.hashes.size(); ++i) {
        std::printf("%s%s %s", i ? ", " : "", hash_algo_name(c.hashes[i].algo),
                    c.hashes[i].hex.c_str());
      }
      std::printf(")%s\n", r.read_errors.empty() ? "" : ", with its read errors as zeros");
      return read_status;
    }
  }
  std::printf("verify: FAILED: %s (%llu bytes) matches none of the expected contents\n",
              image.c_str(), static_cast<unsigned long long>(r.virtual_size));
  for (const Expectation& c : candidates) {
    std::printf("  %s%s:\n", c.what.c_str(),
                c.size ? (" (" + std::to_string(*c.size) + " bytes)").c_str() : "");
    for (auto& h : c.hashes) {
      std::printf("    %-6s expected %s, got %s\n", hash_algo_name(h.algo), h.hex.c_str(),
                  got(h.algo).c_str());
    }
  }
  return kExitDifferent;
}

}  // namespace vdisk::cli
