// Tests for the CSV reader and writer (data/csv.hpp): every liberty real files take, and every
// kind of bad file, each with the line and column its error must name.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "faltung/data/csv.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using faltung::CsvOptions;
using faltung::TabularData;
using faltung::test::contains;
using faltung::test::error_of;

namespace {

template <class T = float>
TabularData<T> parse(const std::string& text, const CsvOptions& o) {
  std::istringstream in(text);
  return faltung::read_csv<T>(in, o, "t.csv");
}

std::string parse_error(const std::string& text, const CsvOptions& o) {
  return error_of([&] { parse(text, o); });
}

CsvOptions label(const std::string& name) { return CsvOptions().label(name); }

std::vector<float> values(const faltung::Tensor<float>& t) { return std::vector<float>(t.begin(), t.end()); }

/// A scratch directory, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("faltung_test_csv_" + std::to_string(std::random_device{}()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name, const std::string& content) const {
    const fs::path p = path / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
};

// ---------------------------------------------------------------------------------------------
// Good input

TEST(Csv, ReadsFeaturesAndLabelByName) {
  const auto d = parse("a,b,y,c\n1,2,0,3\n4.5,-5,1,6e1\n", label("y"));
  EXPECT_EQ(d.x.shape(), (faltung::Shape{2, 3}));
  EXPECT_EQ(d.y.shape(), (faltung::Shape{2, 1}));
  EXPECT_EQ(values(d.x), (std::vector<float>{1, 2, 3, 4.5f, -5, 60}));
  EXPECT_EQ(values(d.y), (std::vector<float>{0, 1}));
  EXPECT_EQ(d.feature_names, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(d.label_name, "y");
  EXPECT_TRUE(d.class_names.empty());
  EXPECT_EQ(d.size(), 2u);
  EXPECT_EQ(d.num_features(), 3u);
  EXPECT_EQ(d.sample_shape(), (faltung::Shape{3}));
}

TEST(Csv, LabelByIndexFromEitherEnd) {
  const std::string text = "a,b,c\n1,2,3\n";
  EXPECT_EQ(values(parse(text, CsvOptions().label_index(0)).y), (std::vector<float>{1}));
  EXPECT_EQ(values(parse(text, CsvOptions().label_index(-1)).y), (std::vector<float>{3}));
  EXPECT_EQ(values(parse(text, CsvOptions().label_index(-3)).y), (std::vector<float>{1}));
  // label("1"): no column has that name, so it is an index.
  const auto d = parse(text, label("1"));
  EXPECT_EQ(values(d.y), (std::vector<float>{2}));
  EXPECT_EQ(d.label_name, "b");
  // A name wins over an index: the column named "0" is the third one.
  EXPECT_EQ(values(parse("x,y,0\n1,2,3\n", label("0")).y), (std::vector<float>{3}));
}

TEST(Csv, WithoutHeaderColumnsAreNamedByIndex) {
  const auto d = parse("1,2,3\n4,5,6\n", CsvOptions().header(false).label("2"));
  EXPECT_EQ(values(d.x), (std::vector<float>{1, 2, 4, 5}));
  EXPECT_EQ(values(d.y), (std::vector<float>{3, 6}));
  EXPECT_EQ(d.feature_names, (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(d.label_name, "2");
}

TEST(Csv, LineEndingsBomBlankLinesAndTheLastLineBreak) {
  const std::vector<float> x = {1, 2, 4, 5};
  for (const std::string& text :
       {std::string("a,b,y\n1,2,3\n4,5,6\n"), std::string("a,b,y\r\n1,2,3\r\n4,5,6\r\n"),
        std::string("a,b,y\r1,2,3\r4,5,6"), std::string("a,b,y\n1,2,3\n4,5,6"),
        std::string("\xEF\xBB\xBF" "a,b,y\n1,2,3\n4,5,6\n"), std::string("\n\na,b,y\n\n1,2,3\n  \n4,5,6\n\n\n"),
        std::string("a,b,y\r\n\r\n1,2,3\r\n4,5,6")}) {
    SCOPED_TRACE(text);
    const auto d = parse(text, label("y"));
    EXPECT_EQ(values(d.x), x);
    EXPECT_EQ(values(d.y), (std::vector<float>{3, 6}));
    EXPECT_EQ(d.feature_names[0], "a");  // no byte order mark in the name
  }
}

TEST(Csv, SkippedPreamble) {
  // scikit-learn's bundled files start with a line of counts and class names, then the data.
  const auto d = parse("3,2,no,yes\r\n1.5,2,0\r\n3,4,1\r\n5,6,1\r\n", CsvOptions().skip_lines(1).header(false).label_index(-1));
  EXPECT_EQ(values(d.x), (std::vector<float>{1.5f, 2, 3, 4, 5, 6}));
  EXPECT_EQ(values(d.y), (std::vector<float>{0, 1, 1}));
  // Lines are still counted from the top of the file.
  EXPECT_TRUE(contains(parse_error("title\nsubtitle\na,y\n1,x\n", label("y").skip_lines(2)), "line 4, column 2"));
  EXPECT_TRUE(contains(parse_error("title\n", label("y").skip_lines(3)), "is empty"));
}

TEST(Csv, QuotedFields) {
  const auto d = parse("\"a, the first\",\"say \"\"hi\"\"\",\"multi\nline\",y\n\"1.5\", \"2\" ,3,\"0\"\n", label("y"));
  EXPECT_EQ(d.feature_names, (std::vector<std::string>{"a, the first", "say \"hi\"", "multi\nline"}));
  EXPECT_EQ(values(d.x), (std::vector<float>{1.5f, 2, 3}));
  EXPECT_EQ(values(d.y), (std::vector<float>{0}));
}

TEST(Csv, NumberForms) {
  const auto d = parse("a,b,c,d,e,f,g,y\n +1 ,\t-2.5e-1, .5 ,1.,1E3,-0,0007,1\n", label("y"));
  EXPECT_EQ(values(d.x), (std::vector<float>{1, -0.25f, 0.5f, 1, 1000, 0, 7}));
  EXPECT_TRUE(std::signbit(d.x[5]));
  // Underflow rounds to zero, as a float or double literal would.
  const auto tiny = parse("a,y\n1e-50,0\n-1e-400,0\n0.000000000000000000000000000000000000000000000000001,0\n", label("y"));
  EXPECT_EQ(values(tiny.x), (std::vector<float>{0, -0.f, 0}));
  // Read exactly: the nearest double, as from_chars gives it.
  EXPECT_EQ(parse<double>("a,y\n0.1,0\n", label("y")).x[0], 0.1);
  EXPECT_EQ(parse<double>("a,y\n1e300,0\n", label("y")).x[0], 1e300);
}

TEST(Csv, SemicolonAndTab) {
  EXPECT_EQ(values(parse("a;b;y\n1.5;2;3\n", CsvOptions().label("y").delimiter(';')).x), (std::vector<float>{1.5f, 2}));
  EXPECT_EQ(values(parse("a\tb\ty\n1\t2\t3\n", CsvOptions().label("y").delimiter('\t')).x), (std::vector<float>{1, 2}));
}

TEST(Csv, TrailingDelimiterOnEveryLine) {
  // Some exporters end every line with the delimiter: one more, empty column everywhere.
  const auto d = parse("a,b,y,\n1,2,3,\n", CsvOptions().label("y").ignore_columns({""}));
  EXPECT_EQ(values(d.x), (std::vector<float>{1, 2}));
}

TEST(Csv, IgnoredColumns) {
  const auto d = parse("id,name,a,y\n17,bob,1.5,1\n18,\"al, jr\",2.5,0\n", CsvOptions().label("y").ignore_columns({"id", "name"}));
  EXPECT_EQ(d.feature_names, (std::vector<std::string>{"a"}));
  EXPECT_EQ(values(d.x), (std::vector<float>{1.5f, 2.5f}));
}

TEST(Csv, CategoricalLabels) {
  const auto text = parse("a,species\n1,virginica\n2,setosa\n3, versicolor \n4,setosa\n",
                          CsvOptions().label("species").categorical_label(true));
  EXPECT_EQ(text.class_names, (std::vector<std::string>{"setosa", "versicolor", "virginica"}));
  EXPECT_EQ(values(text.y), (std::vector<float>{2, 0, 1, 0}));
  EXPECT_EQ(text.num_classes(), 3u);
  // Numbers sort by value, and one value is one class however it is written.
  const auto numbers = parse("a,y\n1,10\n2,2\n3,2.0\n4,-1\n5,+10\n", CsvOptions().label("y").categorical_label(true));
  EXPECT_EQ(numbers.class_names, (std::vector<std::string>{"-1", "2", "10"}));
  EXPECT_EQ(values(numbers.y), (std::vector<float>{2, 1, 1, 0, 2}));
}

TEST(Csv, NonFiniteValuesWhenAllowed) {
  const auto d = parse("a,b,c,y\nnan,inf,-Infinity,1\n", CsvOptions().label("y").allow_non_finite(true));
  EXPECT_TRUE(std::isnan(d.x[0]));
  EXPECT_EQ(d.x[1], std::numeric_limits<float>::infinity());
  EXPECT_EQ(d.x[2], -std::numeric_limits<float>::infinity());
}

TEST(Csv, MaxRowsStopsEarly) {
  // The bad third row is never read.
  const auto d = parse("a,y\n1,0\n2,1\nbad,1\n", CsvOptions().label("y").max_rows(2));
  EXPECT_EQ(values(d.x), (std::vector<float>{1, 2}));
}

TEST(Csv, RecordsAcrossChunkBoundaries) {
  // Rows long enough that fields, quoted fields and line breaks fall across the reader's
  // 64 KiB chunks; every value must come back.
  std::string text = "a,\"b\",y\r\n";
  std::vector<float> expected;
  for (int i = 0; i < 20000; ++i) {
    const float b = -float(i);
    text += std::to_string(i) + ".25e-0" + ",\"" + std::to_string(-i) + "\"," + std::to_string(i % 3) + "\r\n";
    expected.push_back(float(i) + 0.25f);
    expected.push_back(b);
  }
  ASSERT_GT(text.size(), 4u * 65536);
  const auto d = parse(text, label("y"));
  EXPECT_EQ(values(d.x), expected);
  EXPECT_EQ(d.y[19999], float(19999 % 3));
}

TEST(Csv, LoadsAFile) {
  TempDir dir;
  const auto d = faltung::load_csv<double>(dir.file("ok.csv", "a,y\n1,2\n"), label("y"));
  EXPECT_EQ(d.x[0], 1.0);
  EXPECT_EQ(d.y[0], 2.0);
}

TEST(Csv, WriteThenLoadGivesTheSameNumbers) {
  TempDir dir;
  std::mt19937 g(3);
  std::normal_distribution<float> normal(0, 1000);
  TabularData<float> d;
  d.x.resize({50, 3});
  d.y.resize({50, 1});
  for (float& v : d.x) v = normal(g);
  d.x[0] = 1e-42f;  // a subnormal
  d.x[1] = -0.0f;
  d.x[2] = std::numeric_limits<float>::max();
  for (std::size_t i = 0; i < 50; ++i) d.y[i] = float(i % 3);
  d.feature_names = {"plain", "with, comma", " padded \"quoted\" "};
  d.label_name = "class";
  d.class_names = {"no", "yes, really", "maybe"};
  const std::string path = (dir.path / "round.csv").string();
  faltung::write_csv(path, d);
  const auto back = faltung::load_csv<float>(path, CsvOptions().label("class").categorical_label(true));
  EXPECT_EQ(back.feature_names, d.feature_names);
  ASSERT_EQ(back.x.size(), d.x.size());
  for (std::size_t i = 0; i < d.x.size(); ++i) {
    EXPECT_EQ(back.x[i], d.x[i]) << i;
    EXPECT_EQ(std::signbit(back.x[i]), std::signbit(d.x[i])) << i;
  }
  // Class names come back sorted; the labels follow their names.
  EXPECT_EQ(back.class_names, (std::vector<std::string>{"maybe", "no", "yes, really"}));
  for (std::size_t i = 0; i < 50; ++i) EXPECT_EQ(back.class_names[std::size_t(back.y[i])], d.class_names[i % 3]);

  // A regression target comes back as values.
  d.class_names.clear();
  for (std::size_t i = 0; i < 50; ++i) d.y[i] = 0.1f * float(i);
  faltung::write_csv(path, d, ';');
  const auto values_back = faltung::load_csv<float>(path, CsvOptions().label("class").delimiter(';'));
  for (std::size_t i = 0; i < 50; ++i) EXPECT_EQ(values_back.y[i], d.y[i]);
}

TEST(Csv, AFailedWriteKeepsThePreviousFile) {
  TempDir dir;
  const std::string path = dir.file("keep.csv", "old");
  TabularData<float> bad;
  bad.x.resize({2, 2});
  bad.y.resize({2, 1});
  bad.feature_names = {"only one name"};
  EXPECT_TRUE(contains(error_of([&] { faltung::write_csv(path, bad); }), "2 feature columns but 1 feature names"));
  std::ifstream in(path);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "old");
  EXPECT_TRUE(contains(error_of([&] { faltung::write_csv((dir.path / "no/such/dir.csv").string(), TabularData<float>()); }),
                       "features must be (N, F)"));
  bad.feature_names.push_back("two");
  EXPECT_TRUE(contains(error_of([&] { faltung::write_csv((dir.path / "no/such/dir.csv").string(), bad); }),
                       "cannot create the temporary file"));
}

// ---------------------------------------------------------------------------------------------
// Bad input: each error names the source, the line and the column.

TEST(CsvErrors, EmptyFiles) {
  for (const std::string& text : {std::string(""), std::string("\xEF\xBB\xBF"), std::string("\n\r\n  \n")})
    EXPECT_EQ(parse_error(text, label("y")), "read_csv: t.csv is empty: expected a header row naming the columns");
  EXPECT_EQ(parse_error("a,y\n", label("y")), "read_csv: t.csv has a header but no data rows");
  EXPECT_EQ(parse_error("a,y\n\n\n", label("y")), "read_csv: t.csv has a header but no data rows");
}

TEST(CsvErrors, RaggedRows) {
  EXPECT_EQ(parse_error("a,b,y\n1,2,3\n4,5\n", label("y")),
            "read_csv: t.csv, line 3: 2 fields, but the header has 3 (a missing or extra delimiter, or a value with a "
            "',' in it that needs quotes?)");
  EXPECT_TRUE(contains(parse_error("a,b,y\n1,2,3,4\n", label("y")), "t.csv, line 2: 4 fields, but the header has 3"));
  EXPECT_TRUE(contains(parse_error("1,2,3\n1,2\n", CsvOptions().header(false).label("0")),
                       "line 2: 2 fields, but the first row has 3"));
  // Lines are counted as an editor counts them: CRLF once, blank lines and line breaks inside
  // quotes included.
  EXPECT_TRUE(contains(parse_error("\"a\nb\",y\r\n\r\n1,2\r\n\n3\r\n", label("y")), "t.csv, line 6: 1 field, but"));
}

TEST(CsvErrors, ValuesThatAreNotNumbers) {
  EXPECT_EQ(parse_error("a,rooms,y\n1,2,3\n1,three,3\n", label("y")),
            "read_csv: t.csv, line 3, column 2 ('rooms'): 'three' is not a number");
  EXPECT_TRUE(contains(parse_error("a,y\n0x1F,1\n", label("y")), "'0x1F' is not a number"));
  EXPECT_TRUE(contains(parse_error("a,y\n1.5.2,1\n", label("y")), "'1.5.2' is not a number"));
  EXPECT_TRUE(contains(parse_error("a,y\n1 2,1\n", label("y")), "'1 2' is not a number"));
  EXPECT_TRUE(contains(parse_error("a,y\n+-1,1\n", label("y")), "'+-1' is not a number"));
  EXPECT_TRUE(contains(parse_error("a,y\n\"\",1\n", label("y")), "line 2, column 1 ('a'): the field is empty"));
  EXPECT_TRUE(contains(parse_error("a,y\n,1\n", label("y")), "line 2, column 1 ('a'): the field is empty"));
  EXPECT_TRUE(contains(parse_error("a,y\n1,\n", label("y")), "line 2, column 2 ('y'): the field is empty"));
  for (const char* missing : {"NA", "n/a", "?", "NULL", "None", "-", "#N/A"})
    EXPECT_TRUE(contains(parse_error(std::string("a,y\n") + missing + ",1\n", label("y")),
                         std::string("'") + missing + "' marks a missing value"))
        << missing;
  // A decimal comma in a file separated by semicolons.
  EXPECT_EQ(parse_error("a;y\n1,5;1\n", CsvOptions().label("y").delimiter(';')),
            "read_csv: t.csv, line 2, column 1 ('a'): '1,5' is not a number (a decimal comma? the decimal point is '.')");
  // A class name in a numeric label.
  EXPECT_TRUE(contains(parse_error("a,y\n1,yes\n", label("y")), "categorical_label(true)"));
  EXPECT_TRUE(contains(parse_error("a,y\n1, \n", CsvOptions().label("y").categorical_label(true)),
                       "line 2, column 2 ('y'): the label is empty"));
  // Binary junk is shown escaped.
  EXPECT_TRUE(contains(parse_error(std::string("a,y\n\x01\x80z,1\n"), label("y")), "'\\x01\\x80z' is not a number"));
}

TEST(CsvErrors, NonFiniteAndOutOfRange) {
  for (const char* v : {"nan", "NaN", "-nan", "inf", "-Inf", "infinity"})
    EXPECT_TRUE(contains(parse_error(std::string("a,y\n") + v + ",1\n", label("y")),
                         std::string("line 2, column 1 ('a'): '") + v + "' is not a finite number"))
        << v;
  EXPECT_TRUE(contains(parse_error("a,y\n1e39,1\n", label("y")), "'1e39' is beyond the range of float"));
  EXPECT_TRUE(contains(parse_error("a,y\n-1e39,1\n", label("y")), "'-1e39' is beyond the range of float"));
  EXPECT_TRUE(contains(error_of([] { parse<double>("a,y\n1e400,1\n", label("y")); }), "'1e400' is beyond the range of double"));
  EXPECT_TRUE(contains(error_of([] { parse<double>("a,y\n1000000e-1,1e309\n", label("y")); }),
                       "column 2 ('y'): '1e309' is beyond the range of double"));
}

TEST(CsvErrors, LabelAndIgnoredColumns) {
  EXPECT_EQ(parse_error("a,Prize,c\n1,2,3\n", label("prize")),
            "read_csv: t.csv: no column named 'prize'; did you mean 'Prize'? (columns: 'a', 'Prize', 'c')");
  EXPECT_EQ(parse_error("a,b\n1,2\n", CsvOptions().label_index(2)),
            "read_csv: t.csv: label column index 2 is out of range: the file has 2 columns (indices 0..1, or -1..-2 "
            "from the end)");
  EXPECT_TRUE(contains(parse_error("a,b\n1,2\n", CsvOptions().label_index(-3)), "label column index -3 is out of range"));
  EXPECT_EQ(parse_error("y,a,y\n1,2,3\n", label("y")),
            "read_csv: t.csv: the label column 'y' is ambiguous: columns 1 and 3 both have that name");
  EXPECT_TRUE(contains(parse_error("a,y\n1,2\n", CsvOptions()), "no label column chosen"));
  EXPECT_EQ(parse_error("a,y\n1,2\n", CsvOptions().label("y").ignore_columns({"b"})),
            "read_csv: t.csv: cannot ignore column 'b': no column has that name");
  EXPECT_TRUE(contains(parse_error("a,y\n1,2\n", CsvOptions().label("y").ignore_columns({"y"})), "is the label"));
  EXPECT_TRUE(contains(parse_error("y\n1\n", label("y")), "no feature columns"));
  EXPECT_TRUE(contains(parse_error("a,y\n1,2\n", CsvOptions().label("y").ignore_columns({"a"})), "no feature columns"));
  // The long list of a wide file is cut short.
  std::string wide;
  for (int i = 0; i < 30; ++i) wide += "c" + std::to_string(i) + ",";
  EXPECT_TRUE(contains(parse_error(wide + "y\n", label("z")), "... 31 in all)"));
}

TEST(CsvErrors, Quotes) {
  EXPECT_EQ(parse_error("a,y\n1,2\n\"3,\n4\n", label("y")),
            "read_csv: t.csv, line 3, column 1: the quoted field that starts here is never closed");
  EXPECT_EQ(parse_error("a,y\n\"1\"x,2\n", label("y")),
            "read_csv: t.csv, line 2, column 1: 'x' after the closing quote (a quote inside a quoted field is written "
            "twice: \"\")");
}

TEST(CsvErrors, ARecordWithoutEndIsCutOff) {
  // A 1 MB "file" with no line break: the reader stops at max_record_bytes instead of growing.
  std::string text = "a,y\n";
  text += std::string(1 << 20, '1');
  EXPECT_EQ(parse_error(text, CsvOptions().label("y").max_record_bytes(4096)),
            "read_csv: t.csv, line 2: the record is longer than 4096 bytes (max_record_bytes); is a quote left open, "
            "or are the line breaks missing?");
  EXPECT_TRUE(contains(parse_error("a,y\n\"" + std::string(10000, 'x'), CsvOptions().label("y").max_record_bytes(4096)),
                       "longer than 4096 bytes"));
}

TEST(CsvErrors, WrongKindsOfFile) {
  EXPECT_TRUE(contains(parse_error(std::string("\x1f\x8b\x08\x00", 4), label("y")), "gzip-compressed"));
  EXPECT_TRUE(contains(parse_error(std::string("PK\x03\x04rest", 8), label("y")), "ZIP archive"));
  EXPECT_TRUE(contains(parse_error(std::string("\xFF\xFE" "a\0,\0", 6), label("y")), "UTF-16"));
  EXPECT_TRUE(contains(parse_error("a\"y\n", CsvOptions().label("y").delimiter('"')), "delimiter cannot be a quote"));
}

TEST(CsvErrors, Files) {
  TempDir dir;
  const std::string missing = (dir.path / "missing.csv").string();
  EXPECT_EQ(error_of([&] { faltung::load_csv<float>(missing, label("y")); }),
            "load_csv: cannot open '" + missing + "': No such file or directory");
  EXPECT_TRUE(contains(error_of([&] { faltung::load_csv<float>(dir.path.string(), label("y")); }), "is a directory"));
  const std::string bad = dir.file("bad.csv", "a,y\n1,x\n");
  EXPECT_TRUE(contains(error_of([&] { faltung::load_csv<float>(bad, label("y")); }), "'" + bad + "', line 2, column 2"));
}

}  // namespace
