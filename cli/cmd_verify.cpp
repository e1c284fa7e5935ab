// `vdisk verify IMAGE [--expect ALGO:HEX | --hash-file REPORT.json]`: re-hashes
// an image and compares with what the user, a report or (with neither) the
// image itself says it holds; pieces whose stored checksums fail (E01
// chunks) are listed and make the verification fail.
#include <cstdio>
#include <mutex>

#include "cli/cli.h"
#include "cli/source.h"
#include "converters/convert.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/core/hex.h"
#include "formats/core/json.h"

namespace vdisk::cli {

namespace {

// One content a report vouches for: its hashes and its size.
struct Expectation {
  std::string what;
  std::vector<HashValue> hashes;
  std::optional<uint64_t> size;
};

// Every content a report vouches for: the source as stored, the source with
// its unrescued areas as zeros, and the destination of a conversion.
std::vector<Expectation> expectations_of_report(Env& env, const std::string& path) {
  std::unique_ptr<File> f = env.open_read(path);
  if (f->size() > (64u << 20))
    throw Error(ErrorKind::kInvalidArgument, path, std::nullopt, "report is too large");
  std::string text(static_cast<size_t>(f->size()), '\0');
  if (!text.empty()) f->read_at(0, text.data(), text.size());
  const Report rep = Report::parse(text, path);
  std::vector<Expectation> out;
  if (!rep.hashes.empty()) out.push_back({"the source as stored", rep.hashes, rep.virtual_size});
  if (!rep.hashes_zero_filled.empty())
    out.push_back({rep.hashes_zero_filled_scope, rep.hashes_zero_filled, rep.virtual_size});
  if (rep.destination && !rep.destination->hashes.empty()) {
    out.push_back(
        {"the conversion's destination", rep.destination->hashes, rep.destination->virtual_size});
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
      "output", po::value<std::string>()->default_value("human"), "human or json");
  const std::vector<Positional> pos = {{"image", "IMAGE", "image", "the image"}};
  po::variables_map vm;
  if (!parse_args(
          "verify",
          "[-f FMT] IMAGE [--expect ALGO:HEX ... | --hash-file REPORT.json] [-p|--progress json] "
          "[--on-read-error stop|continue [--error-map OUT.map]] [--output json]",
          desc, pos, args, vm)) {
    return kExitOk;
  }
  const bool json = want_json(vm);
  const bool has_expect = vm.count("expect") != 0, has_report = vm.count("hash-file") != 0;
  if (has_expect && has_report)
    throw UsageError("give either --expect ALGO:HEX or --hash-file REPORT.json, not both");
  // Every option checked before the image is opened.
  const SourceOptions source = source_options_from(vm, "image", /*stdin_ok=*/false);
  const std::string& image = source.path;
  GuardedEnv guard(Env::posix());
  claim_outputs(guard, vm, source, "", "");
  std::vector<Expectation> candidates;
  if (has_expect) {
    Expectation e{"the expected digests", {}, std::nullopt};
    for (const std::string& x : vm["expect"].as<std::vector<std::string>>()) {
      size_t colon = x.find(':');
      if (colon == std::string::npos) throw UsageError("--expect '" + x + "' is not ALGO:HEX");
      try {
        e.hashes.push_back(parse_hash_value(x.substr(0, colon), x.substr(colon + 1)));
      } catch (const Error& err) {
        throw UsageError("--expect: " + err.message());
      }
    }
    candidates.push_back(e);
  }
  if (has_report) candidates = expectations_of_report(guard, vm["hash-file"].as<std::string>());
  auto progress = progress_from(vm);
  // Damaged pieces of formats that checksum their content (E01 chunks) are
  // listed after one full pass instead of stopping it.
  std::mutex damage_mu;
  std::vector<DamagedData> damage;
  uint64_t damage_count = 0;
  OpenOptions open_opts = open_options_from(vm, &guard);
  open_opts.on_damaged_data = [&](const DamagedData& d) {
    std::lock_guard<std::mutex> lock(damage_mu);
    if (++damage_count <= 20) damage.push_back(d);
  };
  const CopySource src = open_copy_source(vm, source, open_opts);
  if (!has_expect && !has_report) {
    // The hashes the image itself stores (an E01's MD5 and SHA-1).
    Expectation e{"the hashes stored in the image", {}, std::nullopt};
    for (const StoredDigest& d : src.device->stored_digests()) {
      try {
        e.hashes.push_back(parse_hash_value(d.algo, d.hex));
      } catch (const Error& err) {
        throw Error(ErrorKind::kCorrupt, image, std::nullopt, d.where + ": " + err.message());
      }
    }
    if (e.hashes.empty()) {
      throw UsageError(image +
                       " stores no hashes of its own: give --expect ALGO:HEX or --hash-file "
                       "REPORT.json");
    }
    candidates.push_back(e);
  }
  // Hash once with every algorithm any candidate names.
  std::vector<HashAlgo> algos;
  for (auto& c : candidates) {
    for (auto& h : c.hashes) {
      if (std::find(algos.begin(), algos.end(), h.algo) == algos.end()) algos.push_back(h.algo);
    }
  }
  const BlockDevice& dev = *src.device;
  CopyResult r = copy_device(dev, nullptr, copy_options(src, algos, progress.get(), "verifying"));
  // With read errors only the image with zeros there was hashed: it can
  // match a report's hashes_zero_filled (the same ranges lost when the report
  // was made) or a conversion's destination, never the image as stored, and
  // the exit status says data was lost whatever matched.
  const int read_status = finish_read_errors(src, r, "hashed as zeros");
  const std::vector<HashValue>& computed = r.hashes.empty() ? r.hashes_zero_filled : r.hashes;
  auto got = [&](HashAlgo a) -> const std::string& {
    for (auto& h : computed) {
      if (h.algo == a) return h.hex;
    }
    throw std::logic_error("hash missing");
  };
  // The candidate the content matches, if any.
  const Expectation* matched = nullptr;
  for (const Expectation& c : candidates) {
    bool ok = !c.size || *c.size == r.virtual_size;
    for (auto& h : c.hashes) ok = ok && got(h.algo) == h.hex;
    if (ok) {
      matched = &c;
      break;
    }
  }
  const int status = !matched || damage_count ? kExitDifferent : read_status;
  if (json) {
    Json j = Json::object();
    j.set("image", image);
    j.set("virtual_size", r.virtual_size);
    j.set("ok", status != kExitDifferent);
    j.set("matched", matched ? Json(matched->what) : Json());
    j.set("hashes", hashes_json(computed));
    Json expected = Json::array();
    for (const Expectation& c : candidates) {
      Json cj = Json::object();
      cj.set("what", c.what);
      cj.set("size", c.size ? Json(*c.size) : Json());
      cj.set("hashes", hashes_json(c.hashes));
      expected.push(std::move(cj));
    }
    j.set("expected", std::move(expected));
    j.set("damaged_count", damage_count);
    Json dj = Json::array();
    for (const DamagedData& d : damage) {
      Json e = Json::object();
      e.set("offset", d.offset);
      e.set("length", d.length);
      e.set("message", d.message);
      dj.push(std::move(e));
    }
    j.set("damaged", std::move(dj));
    j.set("read_errors", read_errors_json(r.read_errors));
    std::printf("%s\n", j.dump(2).c_str());
    return status;
  }
  if (damage_count) {
    std::printf("verify: %s: %llu damaged chunk%s (read as zeros when they do not decode):\n",
                image.c_str(), static_cast<unsigned long long>(damage_count),
                damage_count == 1 ? "" : "s");
    for (const DamagedData& d : damage) {
      std::printf("  media offset %s, %llu bytes: %s\n", hex(d.offset).c_str(),
                  static_cast<unsigned long long>(d.length), d.message.c_str());
    }
    if (damage_count > damage.size()) {
      std::printf("  ... and %llu more\n",
                  static_cast<unsigned long long>(damage_count - damage.size()));
    }
  }
  if (matched && damage_count) {
    std::printf("verify: FAILED: %s matches %s, but its chunks are damaged\n", image.c_str(),
                matched->what.c_str());
    return kExitDifferent;
  }
  if (matched) {
    std::printf("verify: OK: %s matches %s (", image.c_str(), matched->what.c_str());
    for (size_t i = 0; i < matched->hashes.size(); ++i) {
      std::printf("%s%s %s", i ? ", " : "", hash_algo_name(matched->hashes[i].algo),
                  matched->hashes[i].hex.c_str());
    }
    std::printf(")%s\n", r.read_errors.empty() ? "" : ", with its read errors as zeros");
    return read_status;
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
