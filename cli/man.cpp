#include "cli/man.h"

#include <cstdio>

#include "cli/cli.h"

namespace vdisk::cli {

namespace {

// Text for roff: backslashes and hyphens escaped, a leading '.' or '\''
// (a request) neutralised.
std::string roff(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";
    } else {
      out += c;
    }
  }
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out = "\\&" + out;
  return out;
}

const Command* find_command(const std::string& name) {
  for (const Command& c : commands())
    if (name == c.name) return &c;
  return nullptr;
}

}  // namespace

CommandHelp command_help(const Command& command) {
  CommandHelp help;
  capture_help(&help);
  try {
    command.run({"-h"});
  } catch (...) {
    capture_help(nullptr);
    throw;
  }
  capture_help(nullptr);
  if (help.name.empty()) help.name = command.name;
  return help;
}

std::string man_page() {
  std::string m;
  m += ".TH VDISK 1 \"\" \"vdisk " VDISK_VERSION "\" \"User Commands\"\n";
  m += ".SH NAME\nvdisk \\- convert, inspect, change and mount virtual disk images\n";
  m += ".SH SYNOPSIS\n.B vdisk\n.I command\n[\\fIoptions\\fR] ...\n.br\n";
  m += ".B vdisk help\n.I command\n.br\n.B vdisk \\-\\-version\n";
  m += ".SH DESCRIPTION\n";
  m += roff(
           "vdisk reads raw, ISO 9660, VMDK, VHD, VHDX, VDI, qcow2, E01, compressed raw and "
           "Apple disk images with their parent chains, converts them into each other keeping "
           "holes, hashes and compares guest content, lists and extracts the files of the file "
           "systems inside, and mounts images read-only with FUSE. Sources are never written: "
           "every output is created beside its final name and appears there only when "
           "complete. The exceptions are the commands that exist to change an image: resize, "
           "rebase and commit write into an image (commit: into the parent) in place, in an "
           "order that survives a crash.") +
       "\n";
  m += ".PP\n" +
       roff(
           "'vdisk formats' lists the formats, what each can do, and the -o options "
           "of each writer.") +
       "\n";
  m += ".SH COMMANDS\n";
  for (const Command& c : commands()) {
    const CommandHelp h = command_help(c);
    m += ".SS \"" + roff("vdisk " + h.name) + "\"\n";
    m += ".B vdisk " + roff(h.name) + "\n" + roff(h.usage) + "\n.PP\n" + roff(c.summary) + ".\n";
    if (!h.positionals.empty()) {
      m += ".PP\nArguments:\n.RS\n";
      for (const Positional& p : h.positionals) {
        m += ".TP\n.I " + roff(p.metavar) + "\n" + roff(p.help) + "\n";
      }
      m += ".RE\n";
    }
    m += ".PP\nOptions:\n.RS\n";
    for (const HelpOption& o : h.options) {
      m += ".TP\n";
      std::string names;
      if (!o.short_name.empty()) names += "\\fB" + roff(o.short_name) + "\\fR, ";
      names += "\\fB" + roff(o.long_name) + "\\fR";
      if (!o.value.empty()) names += " \\fI" + roff(o.value) + "\\fR";
      m += names + "\n" + roff(o.help) + "\n";
    }
    m += ".RE\n";
  }
  m += ".SH EXIT STATUS\n";
  const std::pair<int, const char*> codes[] = {
      {kExitOk, "success"},
      {kExitDifferent, "compare or verify found different content; check found an inconsistency"},
      {kExitError,
       "an error: bad arguments, an unreadable or damaged image (the message names "
       "the file, the byte offset and what is wrong)"},
      {kExitDataLost, "finished, but source bytes could not be read (--on-read-error continue)"},
      {kExitInterrupted, "interrupted by SIGINT or SIGTERM"},
  };
  for (const auto& [code, what] : codes)
    m += ".TP\n.B " + std::to_string(code) + "\n" + roff(what) + "\n";
  m += ".SH ENVIRONMENT\n.TP\n.B COLUMNS\n" + roff("width of help and progress output") + "\n";
  m += ".SH SEE ALSO\n.BR qemu\\-img (1),\n.BR ddrescue (1),\n.BR fusermount3 (1)\n";
  return m;
}

std::string completion_words(const std::string& command) {
  std::string out;
  if (command.empty()) {
    for (const Command& c : commands()) out += std::string(c.name) + "\n";
    return out;
  }
  const Command* c = find_command(command);
  if (!c) return out;
  for (const HelpOption& o : command_help(*c).options) {
    out += o.long_name + "\n";
    if (!o.short_name.empty()) out += o.short_name + "\n";
  }
  return out;
}

bool print_command_page(const std::string& command) {
  const Command* c = find_command(command);
  if (!c) return false;
  std::printf("vdisk %s - %s\n\n", c->name, c->summary);
  std::fflush(stdout);
  c->run({"-h"});
  return true;
}

}  // namespace vdisk::cli
