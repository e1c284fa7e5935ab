// Text for people: terminal width, wrapping, counted nouns, suggestions for
// mistyped names, numbers as vdisk prints them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vdisk::cli {

// Columns of the terminal on standard output, or 80 when it is not one.
unsigned terminal_width();

// `text` wrapped at word boundaries to `width` columns: the first line starts
// after `first_indent` columns already used by the caller, every other line
// with `indent` spaces. A word longer than a line stays whole. No trailing
// newline.
std::string wrap(const std::string& text, unsigned width, unsigned first_indent, unsigned indent);

// Two columns ("  NAME  description"), the description wrapped to `width` and
// aligned after the longest name (at most width / 2; a longer name puts its
// description on the next line). Ends with a newline.
std::string two_columns(const std::vector<std::pair<std::string, std::string>>& rows,
                        unsigned width);

// "1 file", "2 files": `singular` or `plural` with the count.
std::string count_of(uint64_t n, const std::string& singular, const std::string& plural);

// The candidates closest to a mistyped `word`: those it is an unambiguous
// prefix of, else those within a small edit distance (adjacent swaps count
// one), best first. Empty when none is close.
std::vector<std::string> closest_matches(const std::string& word,
                                         const std::vector<std::string>& candidates);
// "; did you mean 'x'?" / "; did you mean 'x' or 'y'?", or "" when there is
// nothing close.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

// A name from an image as it may be printed on a terminal or in a line of
// output (GNU ls -b style): backslash as "\\", control characters as C
// escapes ("\n", "\t", "\033" for ESC), bytes that are not printable UTF-8
// (C1 controls, invalid sequences) as three-digit octal escapes. Nothing else
// changes, so plain names print as they are; a crafted name can neither forge
// a line nor drive the terminal.
std::string escape_name(const std::string& name);

// "0x1f000".
std::string hex_offset(uint64_t v);
// "SHA256" for "sha256": the hash names in human output.
std::string upper_case(std::string s);

}  // namespace vdisk::cli
