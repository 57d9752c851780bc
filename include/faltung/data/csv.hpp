#pragma once
// Reading and writing CSV files of numbers: a table of features with one label column.
//
//   auto data = load_csv<float>("houses.csv", CsvOptions().label("price"));
//   data.x   (N, F) features, every column but the label (and any ignored ones), in file order
//   data.y   (N, 1) the label column
//
// The format is RFC 4180 with the liberties real files take:
//   - the first row names the columns (header(false): the columns are named "0", "1", ...);
//     skip_lines(n) skips a preamble of n lines before it;
//   - fields are separated by a delimiter (',' by default; ';' and '\t' are common);
//   - a field may be quoted ("1.5", "a, b"); "" inside quotes is one quote; a quoted field may
//     hold the delimiter and line breaks;
//   - lines end in \n, \r\n or \r; the last line may lack its line break; blank lines are skipped;
//   - a UTF-8 byte order mark at the start is skipped; spaces and tabs around a number are ignored.
// Numbers are read with std::from_chars: '.' is the decimal point whatever the locale, a leading
// '+' is allowed, and anything else in the field is an error.
//
// The label column is chosen by name or by 0-based index (negative counts from the end: -1 is
// the last column). With categorical_label(true) its values are class names ("yes", "setosa",
// or numbers like 1 and 2) and y holds class indices 0..K-1 in sorted order.
//
// Every problem is a faltung::Error that names the source, the line (1-based, as an editor shows
// it) and, for a field, the column (1-based, as a spreadsheet shows it, with its name):
//   houses.csv, line 7, column 3 ('rooms'): 'three' is not a number
// Covered: a file that cannot be opened or read, an empty file, a header without data rows, a
// row with more or fewer fields than the header, an empty field or a missing-value marker (NA,
// N/A, ?, null, ...), text that is not a number, NaN and infinities (unless allow_non_finite), a
// number beyond the range of T, an unclosed quote, text after a closing quote, a label column or
// ignored column that does not exist, a label that is not a class index, a compressed or binary
// file, and a record longer than max_record_bytes.
//
// Memory: the file is read in 64 KiB chunks, never whole. Apart from the result, memory holds
// one chunk, the current record (at most max_record_bytes: a file without line breaks cannot make
// the reader grow without bound) and, for categorical labels, the distinct label texts. The values
// are collected in fixed-size blocks and copied once into the result: the peak is about twice the
// size of the result as floats, whatever the length of the file's text.

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <istream>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/data/tabular.hpp"
#include "faltung/io/atomic_file.hpp"
#include "faltung/tensor.hpp"
#include "faltung/text.hpp"

FALTUNG_BEGIN_NAMESPACE

/// How load_csv and read_csv read a file.
struct CsvOptions {
  /// The label column: a column name; or, when no column has that name and the text is an
  /// integer, a 0-based index (negative from the end: "-1" is the last column). Required.
  CsvOptions& label(std::string column) { label_ = std::move(column); return *this; }
  /// The label column by 0-based index; negative counts from the end (-1 is the last column).
  CsvOptions& label_index(long index) { label_ = std::to_string(index); label_is_index_ = true; return *this; }
  /// Whether the first row names the columns. Default true. Without a header the columns are
  /// named "0", "1", ... (so label("2") is the third column either way).
  CsvOptions& header(bool v) { header_ = v; return *this; }
  /// Lines to skip at the start of the file, before the header (a title, a preamble), counted
  /// as an editor counts them. Default 0.
  CsvOptions& skip_lines(std::size_t v) { skip_lines_ = v; return *this; }
  /// The field separator. Default ','. Must not be '"', '\r' or '\n'.
  CsvOptions& delimiter(char v) { delimiter_ = v; return *this; }
  /// Columns to leave out (an id, a name, a date), by name. Each must exist. Default none.
  CsvOptions& ignore_columns(std::vector<std::string> names) { ignore_ = std::move(names); return *this; }
  /// Read the label as class names and make y class indices 0..K-1, the classes sorted (by value
  /// when every label is a number, else by text). Default false: the label is a number, kept as is.
  CsvOptions& categorical_label(bool v) { categorical_ = v; return *this; }
  /// Accept "nan", "inf", "-inf" (any case) as values. Default false: they are errors, because one
  /// NaN in the inputs makes every loss NaN and stops training far from its cause.
  CsvOptions& allow_non_finite(bool v) { allow_non_finite_ = v; return *this; }
  /// Read at most this many data rows (a quick trial on a large file). Default 0: all of them.
  CsvOptions& max_rows(std::size_t v) { max_rows_ = v; return *this; }
  /// The longest record (one row, line breaks in quoted fields included), in bytes. Default
  /// 16 MiB. A longer one is an error: it bounds the memory of a file that has no line breaks.
  CsvOptions& max_record_bytes(std::size_t v) { max_record_bytes_ = v; return *this; }

  std::string label_;
  bool label_is_index_ = false;
  bool header_ = true;
  std::size_t skip_lines_ = 0;
  char delimiter_ = ',';
  std::vector<std::string> ignore_;
  bool categorical_ = false;
  bool allow_non_finite_ = false;
  std::size_t max_rows_ = 0;
  std::size_t max_record_bytes_ = std::size_t(16) << 20;
};

namespace detail {

/// A field's text for an error message: at most 40 characters, control and non-ASCII bytes as
/// \xNN, so that a binary file gives a readable message.
inline std::string csv_quote_for_message(std::string_view s) {
  std::string out = "'";
  const std::size_t shown = std::min<std::size_t>(s.size(), 40);
  for (std::size_t i = 0; i < shown; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += char(c);
    } else {
      const char* digits = "0123456789abcdef";
      out += "\\x";
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  if (shown < s.size()) out += "...";
  return out + "'";
}

/// Spaces and tabs around a field are not part of it.
inline std::string_view csv_trim(std::string_view s) { return trim(s, " \t"); }

inline bool csv_equal_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

/// How a field's text reads as a number.
enum class CsvNumber { ok, empty, missing, not_a_number, non_finite, out_of_range };

/// The sign of the decimal exponent of a number's text (digits, an optional point, an optional
/// exponent) that from_chars found out of range: negative means it underflows (it rounds to
/// zero, a harmless loss of digits); otherwise it overflows.
inline bool csv_underflows(std::string_view s) {
  std::size_t i = 0;
  long integer_digits = 0, zeros_after_point = 0;
  bool nonzero_seen = false, in_fraction = false;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '.') {
      in_fraction = true;
    } else if (c >= '0' && c <= '9') {
      if (!in_fraction) {
        if (nonzero_seen || c != '0') ++integer_digits, nonzero_seen = true;
      } else if (!nonzero_seen) {
        if (c == '0') ++zeros_after_point;
        else nonzero_seen = true;
      }
    } else {
      break;
    }
  }
  const long leading = integer_digits > 0 ? integer_digits - 1 : -(zeros_after_point + 1);
  long exponent = 0;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    const bool negative = i < s.size() && s[i] == '-';
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) exponent = std::min(exponent * 10 + (s[i] - '0'), 1L << 40);
    if (negative) exponent = -exponent;
  }
  return leading + exponent < 0;
}

/// The smallest magnitude that rounds to infinity in T: the largest T plus half its last step
/// (3.4028235e38, the float maximum as printed, is a little above the maximum but rounds to it).
template <class T>
double csv_rounds_to_infinity() {
  const T max = std::numeric_limits<T>::max();
  if (sizeof(T) >= sizeof(double)) return std::numeric_limits<double>::infinity();
  return double(max) + (double(max) - double(std::nextafter(max, T(0)))) / 2;
}

/// Reads `text` (spaces and tabs around it ignored) as one number of type T.
template <class T>
CsvNumber csv_parse_number(std::string_view text, bool allow_non_finite, T& out) {
  std::string_view s = csv_trim(text);
  if (s.empty()) return CsvNumber::empty;
  const auto not_a_number = [&] {
    // Only now, off the fast path: is it one of the usual marks of a missing value?
    for (std::string_view marker : {"NA", "N/A", "#N/A", "NULL", "None", "?", "-", "."})
      if (csv_equal_ignoring_case(csv_trim(text), marker)) return CsvNumber::missing;
    return CsvNumber::not_a_number;
  };
  bool negative = false;
  if (s.front() == '+' || s.front() == '-') {
    negative = s.front() == '-';
    s.remove_prefix(1);
    if (s.empty() || s.front() == '+' || s.front() == '-') return not_a_number();
  }
  double v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ptr != s.data() + s.size()) return not_a_number();
  if (r.ec == std::errc::result_out_of_range) {
    if (!csv_underflows(s)) return CsvNumber::out_of_range;
    v = 0;
  } else if (r.ec != std::errc()) {
    return not_a_number();
  }
  if (negative) v = -v;
  if (!std::isfinite(v)) {
    if (!allow_non_finite) return CsvNumber::non_finite;
  } else if (std::abs(v) >= csv_rounds_to_infinity<T>()) {
    return CsvNumber::out_of_range;
  }
  out = static_cast<T>(v);
  return CsvNumber::ok;
}

/// Splits a byte stream into records of fields, reading it in 64 KiB chunks. Knows quoting, line
/// breaks and the byte order mark; knows nothing about numbers or columns.
class CsvRecordReader {
 public:
  CsvRecordReader(std::istream& in, std::string source, char delimiter, std::size_t max_record_bytes)
      : in_(in), source_(std::move(source)), delimiter_(delimiter), max_record_bytes_(max_record_bytes), buffer_(1 << 16) {
    FALTUNG_CHECK(delimiter != '"' && delimiter != '\n' && delimiter != '\r', "read_csv: ", source_,
                  ": the delimiter cannot be a quote or a line break");
    FALTUNG_CHECK(max_record_bytes > 0, "read_csv: ", source_, ": max_record_bytes must be positive");
    fill();
    check_start();
  }

  const std::string& source() const { return source_; }

  /// Skips the next n lines, whatever they hold.
  void skip_lines(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      int c = get();
      while (c != '\n' && c != '\r' && c != end_of_input) c = get();
      if (c == end_of_input) return;
      line_break(c);
    }
  }

  /// Reads the next record that is not blank. False at the end of the input.
  bool next() {
    for (;;) {
      if (!read_record()) return false;
      if (!(ends_.size() == 1 && !quoted_[0] && csv_trim(field(0)).empty())) return true;
    }
  }

  std::size_t size() const { return ends_.size(); }
  std::string_view field(std::size_t i) const {
    const std::size_t begin = i == 0 ? 0 : ends_[i - 1];
    return std::string_view(text_).substr(begin, ends_[i] - begin);
  }
  /// Field i's text as a name: exactly as written when quoted, else without spaces around it.
  std::string_view text(std::size_t i) const { return quoted_[i] ? field(i) : csv_trim(field(i)); }
  /// The line the current record starts on (1-based).
  std::size_t line() const { return record_line_; }
  /// The line field i starts on: a quoted field before it may span lines.
  std::size_t field_line(std::size_t i) const { return lines_[i]; }

  /// "data.csv, line 7": the start of every message about the current record.
  std::string where(std::size_t line) const { return source_ + ", line " + std::to_string(line); }

 private:
  static constexpr int end_of_input = -1;

  void fill() {
    pos_ = 0;
    end_ = 0;
    if (in_.bad() || in_.eof()) return;
    in_.read(buffer_.data(), std::streamsize(buffer_.size()));
    end_ = std::size_t(in_.gcount());
    if (in_.bad()) fail("read_csv: ", source_, ": read error after line ", line_, ": ", std::strerror(errno));
  }
  int get() {
    if (pos_ == end_) {
      fill();
      if (end_ == 0) return end_of_input;
    }
    return static_cast<unsigned char>(buffer_[pos_++]);
  }
  int peek() {
    if (pos_ == end_) {
      fill();
      if (end_ == 0) return end_of_input;
    }
    return static_cast<unsigned char>(buffer_[pos_]);
  }

  // The first bytes say what kind of file this is: skip a UTF-8 byte order mark, and name the
  // usual wrong files (compressed, a spreadsheet, UTF-16) instead of reporting their bytes as
  // "not a number".
  void check_start() {
    const auto starts_with = [&](std::initializer_list<unsigned char> magic) {
      if (end_ < magic.size()) return false;
      std::size_t i = 0;
      for (unsigned char m : magic)
        if (static_cast<unsigned char>(buffer_[i++]) != m) return false;
      return true;
    };
    if (starts_with({0xEF, 0xBB, 0xBF})) pos_ = 3;
    if (starts_with({0x1f, 0x8b})) fail("read_csv: ", source_, " is gzip-compressed; decompress it first (gunzip)");
    if (starts_with({'P', 'K', 3, 4}))
      fail("read_csv: ", source_, " is a ZIP archive (an .xlsx spreadsheet?); export it as CSV");
    if (starts_with({0xFF, 0xFE}) || starts_with({0xFE, 0xFF}))
      fail("read_csv: ", source_, " is UTF-16 text; save it as UTF-8");
  }

  // A line break just read as c: \r\n counts once.
  void line_break(int c) {
    if (c == '\r' && peek() == '\n') ++pos_;
    ++line_;
  }

  void end_field(bool quoted, std::size_t line) {
    ends_.push_back(text_.size());
    quoted_.push_back(quoted);
    lines_.push_back(line);
  }

  void append(int c) {
    check_length(1);
    text_ += char(c);
  }
  void append(const char* p, std::size_t n) {
    check_length(n);
    text_.append(p, n);
  }
  void check_length(std::size_t more) {
    if (text_.size() + more > max_record_bytes_)
      fail("read_csv: ", where(record_line_), ": the record is longer than ", max_record_bytes_,
           " bytes (max_record_bytes); is a quote left open, or are the line breaks missing?");
  }

  bool read_record() {
    text_.clear();
    ends_.clear();
    quoted_.clear();
    lines_.clear();
    record_line_ = line_;
    int c = get();
    if (c == end_of_input) return false;
    for (;;) {  // one field per round; c is its first byte
      const std::size_t field_line = line_;
      if (c == '"') {
        // Quoted: up to the closing quote, then only spaces before the delimiter or line break.
        for (;;) {
          c = get();
          if (c == end_of_input)
            fail("read_csv: ", where(field_line), ", column ", ends_.size() + 1,
                 ": the quoted field that starts here is never closed");
          if (c == '"') {
            if (peek() != '"') break;
            ++pos_;
          } else if (c == '\n' || (c == '\r' && peek() != '\n')) {
            ++line_;
          }
          append(c);
        }
        c = get();
        while (c == ' ' || c == '\t') c = get();
        if (c != delimiter_ && c != '\n' && c != '\r' && c != end_of_input)
          fail("read_csv: ", where(field_line), ", column ", ends_.size() + 1, ": ",
               csv_quote_for_message(std::string(1, char(c))),
               " after the closing quote (a quote inside a quoted field is written twice: \"\")");
        end_field(true, field_line);
      } else {
        // Spaces before an opening quote (`1, "2"`) belong to no one: the field is quoted.
        std::size_t spaces = 0;
        while (c == ' ' || c == '\t') {
          append(c);
          ++spaces;
          c = get();
        }
        if (c == '"' && spaces > 0) {
          text_.resize(text_.size() - spaces);
          continue;
        }
        while (c != delimiter_ && c != '\n' && c != '\r' && c != end_of_input) {
          append(c);
          // The rest of the field as one span of the chunk: most fields are short numbers, and
          // get() pays a call and a bounds check for every byte.
          const char* const first = buffer_.data() + pos_;
          const char* last = first;
          const char* const stop = buffer_.data() + end_;
          while (last != stop && *last != delimiter_ && *last != '\n' && *last != '\r') ++last;
          append(first, std::size_t(last - first));
          pos_ += std::size_t(last - first);
          c = get();
        }
        end_field(false, field_line);
      }
      if (c == delimiter_) {
        c = get();
        if (c == '\n' || c == '\r' || c == end_of_input) {  // a trailing delimiter: one more, empty field
          end_field(false, line_);
          break;
        }
        continue;
      }
      break;
    }
    if (c != end_of_input) line_break(c);
    return true;
  }

  std::istream& in_;
  std::string source_;
  char delimiter_;
  std::size_t max_record_bytes_;
  std::vector<char> buffer_;
  std::size_t pos_ = 0, end_ = 0;
  std::size_t line_ = 1, record_line_ = 1;
  std::string text_;                 // the current record's field contents, back to back
  std::vector<std::size_t> ends_;    // ends_[i]: where field i ends in text_
  std::vector<char> quoted_;         // quoted_[i]: field i was quoted
  std::vector<std::size_t> lines_;   // lines_[i]: the line field i starts on
};

/// Where the values go as they are read: blocks of fixed size, so that a long file never makes
/// one huge vector double (and briefly hold three times its size).
template <class T>
class CsvValueBlocks {
 public:
  void push_back(T v) {
    if (blocks_.empty() || blocks_.back().size() == block_size) {
      blocks_.emplace_back();
      blocks_.back().reserve(block_size);
    }
    blocks_.back().push_back(v);
    ++size_;
  }
  std::size_t size() const { return size_; }
  void copy_to(T* dst) const {
    for (const auto& b : blocks_) dst = std::copy(b.begin(), b.end(), dst);
  }

 private:
  static constexpr std::size_t block_size = std::size_t(1) << 16;
  std::vector<std::vector<T>> blocks_;
  std::size_t size_ = 0;
};

/// The most classes a categorical label may have: more usually means a regression target or an
/// id column was chosen as the label.
constexpr std::size_t csv_max_classes = 65536;

/// Resolves CsvOptions::label against the column names: a name first, then an integer index.
inline std::size_t csv_label_column(const std::vector<std::string>& names, const CsvOptions& o,
                                    const std::string& source) {
  FALTUNG_CHECK(!o.label_.empty(), "read_csv: ", source,
                ": no label column chosen; set CsvOptions().label(\"name\") or label_index(i)");
  const long n = long(names.size());
  if (!o.label_is_index_) {
    std::vector<std::size_t> found;
    for (std::size_t i = 0; i < names.size(); ++i)
      if (names[i] == o.label_) found.push_back(i);
    if (found.size() > 1)
      fail("read_csv: ", source, ": the label column '", o.label_, "' is ambiguous: columns ", found[0] + 1, " and ",
           found[1] + 1, " both have that name");
    if (found.size() == 1) return found[0];
  }
  long index = 0;
  const char* first = o.label_.data();
  const char* last = first + o.label_.size();
  const auto r = std::from_chars(first, last, index);
  if (r.ec != std::errc() || r.ptr != last) {
    std::ostringstream msg;
    msg << "read_csv: " << source << ": no column named '" << o.label_ << "'";
    for (const std::string& name : names)
      if (csv_equal_ignoring_case(name, o.label_)) msg << "; did you mean '" << name << "'?";
    msg << " (columns:";
    for (std::size_t i = 0; i < names.size() && i < 20; ++i) msg << (i ? ", '" : " '") << names[i] << "'";
    if (names.size() > 20) msg << ", ... " << names.size() << " in all";
    msg << ")";
    throw Error(msg.str());
  }
  FALTUNG_CHECK(index >= -n && index < n, "read_csv: ", source, ": label column index ", index,
                " is out of range: the file has ", n, " columns (indices 0..", n - 1, ", or -1..-", n,
                " from the end)");
  return std::size_t(index < 0 ? index + n : index);
}

/// The distinct label texts of a categorical label, in order of first appearance; at the end,
/// sorted into classes.
class CsvClassMap {
 public:
  std::uint32_t id(std::string_view text) {
    auto it = ids_.find(std::string(text));
    if (it != ids_.end()) return it->second;
    const std::uint32_t id = std::uint32_t(texts_.size());
    ids_.emplace(std::string(text), id);
    texts_.emplace_back(text);
    return id;
  }
  std::size_t size() const { return texts_.size(); }

  /// The classes, sorted: by value when every text is a number (then "1" and "1.0" are one
  /// class, named by its shortest form), else by text. Returns the class names and writes, for
  /// each first-appearance id, its class index.
  std::vector<std::string> sorted(std::vector<std::size_t>& class_of_id) const {
    std::vector<double> values(texts_.size());
    bool numeric = true;
    for (std::size_t i = 0; i < texts_.size() && numeric; ++i)
      numeric = csv_parse_number(texts_[i], false, values[i]) == CsvNumber::ok;
    std::vector<std::string> names;
    class_of_id.assign(texts_.size(), 0);
    if (numeric) {
      std::map<double, std::size_t> index;
      for (double v : values) index.emplace(v == 0 ? 0.0 : v, 0);  // -0 and 0 are one class
      for (auto& [v, k] : index) {
        k = names.size();
        names.push_back(shortest(v));
      }
      for (std::size_t i = 0; i < texts_.size(); ++i) class_of_id[i] = index.at(values[i] == 0 ? 0.0 : values[i]);
    } else {
      std::map<std::string, std::size_t> index;
      for (const std::string& t : texts_) index.emplace(t, 0);
      for (auto& [t, k] : index) {
        k = names.size();
        names.push_back(t);
      }
      for (std::size_t i = 0; i < texts_.size(); ++i) class_of_id[i] = index.at(texts_[i]);
    }
    return names;
  }

 private:
  std::unordered_map<std::string, std::uint32_t> ids_;
  std::vector<std::string> texts_;
};

}  // namespace detail

/// Reads a CSV table from a stream (see the top of this header for the format and the errors).
/// `source` names the stream in error messages.
template <class T>
TabularData<T> read_csv(std::istream& in, const CsvOptions& options, const std::string& source = "<stream>") {
  using namespace detail;
  CsvRecordReader reader(in, source, options.delimiter_, options.max_record_bytes_);
  reader.skip_lines(options.skip_lines_);
  const bool has_first = reader.next();
  FALTUNG_CHECK(has_first, "read_csv: ", source, " is empty: ",
                options.header_ ? "expected a header row naming the columns" : "no rows");

  // Column names, from the header or "0", "1", ...
  std::vector<std::string> names;
  const std::size_t columns = reader.size();
  for (std::size_t i = 0; i < columns; ++i)
    names.push_back(options.header_ ? std::string(reader.text(i)) : std::to_string(i));
  const std::size_t label = csv_label_column(names, options, source);

  // role[i]: where column i goes: a feature column, the label, or nowhere.
  constexpr std::size_t label_role = std::size_t(-1), ignored_role = std::size_t(-2);
  std::vector<std::size_t> role(columns, 0);
  role[label] = label_role;
  for (const std::string& name : options.ignore_) {
    const auto it = std::find(names.begin(), names.end(), name);
    FALTUNG_CHECK(it != names.end(), "read_csv: ", source, ": cannot ignore column '", name, "': no column has that name");
    const std::size_t i = std::size_t(it - names.begin());
    FALTUNG_CHECK(i != label, "read_csv: ", source, ": column '", name, "' is the label; it cannot be ignored too");
    role[i] = ignored_role;
  }
  TabularData<T> data;
  data.label_name = names[label];
  for (std::size_t i = 0; i < columns; ++i)
    if (role[i] != label_role && role[i] != ignored_role) {
      role[i] = data.feature_names.size();
      data.feature_names.push_back(names[i]);
    }
  const std::size_t features = data.feature_names.size();
  FALTUNG_CHECK(features > 0, "read_csv: ", source, ": no feature columns: the file has ", columns,
                " column(s), and the label '", names[label], "'", options.ignore_.empty() ? "" : " and the ignored ones",
                " leave none");

  const auto column_name = [&](std::size_t i) { return "column " + std::to_string(i + 1) + " ('" + names[i] + "')"; };
  CsvValueBlocks<T> values;
  std::vector<T> labels;
  std::vector<std::uint32_t> label_ids;
  CsvClassMap classes;
  std::size_t rows = 0;
  bool row_pending = options.header_ ? reader.next() : true;
  while (row_pending && (options.max_rows_ == 0 || rows < options.max_rows_)) {
    if (reader.size() != columns)
      fail("read_csv: ", reader.where(reader.line()), ": ", reader.size(), " field", reader.size() == 1 ? "" : "s",
           ", but ", options.header_ ? "the header has " : "the first row has ", columns,
           " (a missing or extra delimiter, or a value with a '", options.delimiter_, "' in it that needs quotes?)");
    for (std::size_t i = 0; i < columns; ++i) {
      if (role[i] == ignored_role) continue;
      const std::string_view text = reader.field(i);
      if (role[i] == label_role && options.categorical_) {
        const std::string_view t = reader.text(i);
        if (csv_trim(t).empty())
          fail("read_csv: ", reader.where(reader.field_line(i)), ", ", column_name(i), ": the label is empty");
        label_ids.push_back(classes.id(t));
        if (classes.size() > csv_max_classes)
          fail("read_csv: ", reader.where(reader.field_line(i)), ", ", column_name(i), ": more than ",
               csv_max_classes, " distinct labels; is '", names[i], "' a regression target or an id rather than a class?");
        continue;
      }
      T v = 0;
      const CsvNumber r = csv_parse_number(text, options.allow_non_finite_, v);
      if (r != CsvNumber::ok) {
        std::ostringstream msg;
        msg << "read_csv: " << reader.where(reader.field_line(i)) << ", " << column_name(i) << ": ";
        const std::string shown = csv_quote_for_message(csv_trim(text));
        switch (r) {
          case CsvNumber::empty: msg << "the field is empty (a missing value; fill it in or drop the row)"; break;
          case CsvNumber::missing: msg << shown << " marks a missing value; fill it in or drop the row"; break;
          case CsvNumber::non_finite:
            msg << shown << " is not a finite number (allow_non_finite(true) accepts NaN and infinities)";
            break;
          case CsvNumber::out_of_range:
            msg << shown << " is beyond the range of " << (std::is_same<T, float>::value ? "float" : "double");
            break;
          default:
            msg << shown << " is not a number";
            if (text.find(',') != std::string_view::npos && options.delimiter_ != ',')
              msg << " (a decimal comma? the decimal point is '.')";
            else if (role[i] == label_role)
              msg << " (a class name? categorical_label(true) reads labels as class names)";
        }
        throw Error(msg.str());
      }
      if (role[i] == label_role)
        labels.push_back(v);
      else
        values.push_back(v);
    }
    ++rows;
    row_pending = reader.next();
  }
  FALTUNG_CHECK(rows > 0, "read_csv: ", source, " has a header but no data rows");

  data.x.resize(Shape{rows, features});
  values.copy_to(data.x.data());
  data.y.resize(Shape{rows, 1});
  if (options.categorical_) {
    std::vector<std::size_t> class_of_id;
    data.class_names = classes.sorted(class_of_id);
    for (std::size_t r = 0; r < rows; ++r) data.y[r] = T(class_of_id[label_ids[r]]);
  } else {
    std::copy(labels.begin(), labels.end(), data.y.data());
  }
  return data;
}

/// Reads a CSV file (see the top of this header for the format and the errors).
template <class T>
TabularData<T> load_csv(const std::string& path, const CsvOptions& options) {
  std::error_code ec;
  FALTUNG_CHECK(!std::filesystem::is_directory(path, ec), "load_csv: '", path, "' is a directory, not a CSV file");
  std::ifstream in(path, std::ios::binary);
  if (!in) detail::fail("load_csv: cannot open '", path, "': ", std::strerror(errno));
  return read_csv<T>(in, options, "'" + path + "'");
}

namespace detail {
/// A CSV field: quoted when it holds the delimiter, a quote, a line break, or spaces at its ends.
inline std::string csv_field(const std::string& s, char delimiter) {
  const bool needs_quotes = s.empty() || s.find_first_of(std::string("\"\r\n") + delimiter) != std::string::npos ||
                            s.front() == ' ' || s.back() == ' ' || s.front() == '\t' || s.back() == '\t';
  if (!needs_quotes) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}
}  // namespace detail

/// Writes `data` as a CSV file that load_csv reads back exactly: a header (the feature names,
/// then the label name), then one row per sample with the features and the label last. Values are
/// written in their shortest form that reads back as the same T; class labels as their class
/// names. The file is written atomically (a temporary beside it, renamed into place): a failed
/// write leaves any previous file as it was.
template <class T>
void write_csv(const std::string& path, const TabularData<T>& data, char delimiter = ',') {
  FALTUNG_CHECK(!path.empty(), "write_csv: the path is empty");
  data.check("write_csv");
  FALTUNG_CHECK(!std::isalnum(static_cast<unsigned char>(delimiter)) && std::string("\"\r\n.+-").find(delimiter) == std::string::npos,
                "write_csv: '", delimiter, "' cannot separate numbers");
  detail::AtomicFile file(path);
  std::string buffer;
  const auto flush = [&](bool force) {
    if (force || buffer.size() >= (std::size_t(1) << 20)) {
      file.write(reinterpret_cast<const unsigned char*>(buffer.data()), buffer.size());
      buffer.clear();
    }
  };
  for (const std::string& name : data.feature_names) buffer += detail::csv_field(name, delimiter) + delimiter;
  buffer += detail::csv_field(data.label_name, delimiter) + "\n";
  const std::size_t n = data.size(), f = data.num_features();
  char number[64];
  const auto put = [&](T v) {
    const auto r = std::to_chars(number, number + sizeof number, v);
    buffer.append(number, r.ptr);
  };
  for (std::size_t i = 0; i < n; ++i) {
    const T* row = data.x.data() + i * f;
    for (std::size_t j = 0; j < f; ++j) {
      put(row[j]);
      buffer += delimiter;
    }
    if (data.class_names.empty())
      put(data.y[i]);
    else
      buffer += detail::csv_field(data.class_names[std::size_t(data.y[i])], delimiter);
    buffer += '\n';
    flush(false);
  }
  flush(true);
  file.commit();
}

FALTUNG_END_NAMESPACE
