// Model files (io/model_file.hpp): the byte layout, bitwise round trips in float and double,
// load_model, a clear error naming the file for every kind of bad file, and saves that fail
// without touching the previous file or leaving a temporary behind.

#include <gtest/gtest.h>

#include <faltung/losses/cross_entropy.hpp>
#include <faltung/io/load_model.hpp>
#include <faltung/model/architecture.hpp>
#include <faltung/optimizers/adam.hpp>

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <csignal>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#define FALTUNG_TEST_POSIX 1
#else
#define FALTUNG_TEST_POSIX 0
#endif

using namespace faltung;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<unsigned char>;

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const Bytes& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

/// An independent little-endian encoder, to pin the documented layout.
struct Encoder {
  Bytes b;
  void raw(const void* p, std::size_t n) {
    const auto* c = static_cast<const unsigned char*>(p);
    b.insert(b.end(), c, c + n);
  }
  void u32(std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<unsigned char>(v >> (8 * i)));
  }
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) b.push_back(static_cast<unsigned char>(v >> (8 * i)));
  }
  void str(const std::string& s) {
    u32(std::uint32_t(s.size()));
    raw(s.data(), s.size());
  }
  void f32(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    u32(u);
  }
  void checksum() {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : b) {
      h ^= c;
      h *= 0x100000001b3ull;
    }
    u64(h);
  }
};

template <class T>
void expect_same_parameters(Sequential<T>& a, Sequential<T>& b) {
  const auto pa = a.parameters(), pb = b.parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i) {
    ASSERT_EQ(pa[i]->value.shape(), pb[i]->value.shape());
    EXPECT_EQ(std::memcmp(pa[i]->value.data(), pb[i]->value.data(), pa[i]->value.size() * sizeof(T)), 0)
        << "parameter " << i << " differs";
  }
}

/// The network's raw output in inference mode (predict() would add the compiled loss's softmax).
template <class T>
Tensor<T> infer(Sequential<T>& net, const Tensor<T>& x) {
  net.set_training(false);
  return net.forward(x);
}

template <class T>
Tensor<T> random_batch(const Shape& per_sample, std::size_t n, std::uint64_t seed) {
  Random rng(seed);
  Tensor<T> x(per_sample.with_batch(n));
  for (T& v : x) v = T(rng.uniform(-1, 1));
  return x;
}

template <class T>
Tensor<T> random_labels(std::size_t n, std::size_t classes, std::uint64_t seed) {
  Random rng(seed);
  Tensor<T> y(Shape{n});
  for (T& v : y) v = T(std::size_t(rng.uniform(0, double(classes))) % classes);
  return y;
}

const char* const small_cnn = "conv:4:3:same:relu,pool:2,drop:0.25,flatten,dense:16:relu,drop:0.5,dense:5";

/// A model trained for a few steps, so that its weights are not just the initialisation.
template <class T>
Sequential<T> trained_model(std::uint64_t seed = 3) {
  Sequential<T> net = make_sequential<T>(small_cnn, {1, 8, 8}, seed);
  net.compile(SparseCrossEntropy{}, Adam<T>());
  const Tensor<T> x = random_batch<T>({1, 8, 8}, 32, 11);
  const Tensor<T> y = random_labels<T>(32, 5, 12);
  for (int i = 0; i < 5; ++i) net.train_on_batch(x, y);
  return net;
}

/// A model that is not a Sequential: save_model and load_weights only need four members.
struct TinyModel {
  std::string spec_ = "tiny";
  Shape input_{2};
  bool built_ = true;
  Parameter<double> w_{"w", Shape{2, 3}};
  std::string spec() const { return spec_; }
  const Shape& input_shape() const { return input_; }
  bool built() const { return built_; }
  std::vector<Parameter<double>*> parameters() { return {&w_}; }
};

/// A layer whose parameters() throws once armed: a model failing in the middle of a save.
template <class T>
class Exploding : public Layer<T> {
 public:
  explicit Exploding(const bool* armed) : armed_(armed) {}
  std::string type() const override { return "Exploding"; }
  std::string default_name() const override { return "exploding"; }
  Shape output_shape(const Shape& in) const override { return in; }
  void forward_impl(const Tensor<T>& x, Tensor<T>& y) override { y = x; }
  void backward_impl(const Tensor<T>&, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>& dx) override { dx = dy; }
  std::vector<Parameter<T>*> parameters() override {
    if (*armed_) throw Error("Exploding: parameters() failed");
    return {};
  }
  std::string spec() const override { return "exploding"; }
  std::unique_ptr<Layer<T>> clone() const override { return std::make_unique<Exploding<T>>(*this); }

 private:
  const bool* armed_;
};

class ModelFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
#if FALTUNG_TEST_POSIX
    const std::string process = std::to_string(std::uint64_t(::getpid()));
#else
    const std::string process = std::to_string(Random(std::uint64_t(std::time(nullptr))).next_u64());
#endif
    dir_ = fs::temp_directory_path() / ("faltung_test_io_" + process + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  /// The names in the test directory: a failed save must leave no temporary behind.
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  /// Expects f() to throw a faltung::Error whose message contains every part.
  template <class F>
  static void expect_error(F&& f, const std::vector<std::string>& parts) {
    try {
      f();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      const std::string what = e.what();
      for (const std::string& p : parts)
        EXPECT_NE(what.find(p), std::string::npos) << "missing \"" << p << "\" in: " << what;
    }
  }

  fs::path dir_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// The format

TEST_F(ModelFileTest, LayoutIsTheDocumentedOne) {
  Sequential<float> net = make_sequential<float>("dense:2", {3});
  auto params = net.parameters();
  for (std::size_t i = 0; i < params[0]->value.size(); ++i) params[0]->value[i] = float(i) + 0.5f;
  params[1]->value[0] = -1.0f;
  params[1]->value[1] = 2.25f;
  save_model(net, path("tiny.faltung"));

  Encoder e;
  e.raw("FALTUNG\n", 8);
  e.u32(1);  // format version
  e.u32(4);  // float
  e.u32(1);  // input rank
  e.u64(3);
  e.str("dense:2");
  e.u32(2);  // parameter tensors
  e.str("kernel");
  e.u32(2);
  e.u64(3);
  e.u64(2);
  for (int i = 0; i < 6; ++i) e.f32(float(i) + 0.5f);
  e.str("bias");
  e.u32(1);
  e.u64(2);
  e.f32(-1.0f);
  e.f32(2.25f);
  e.checksum();
  EXPECT_EQ(read_bytes(path("tiny.faltung")), e.b);

  const ModelFile f = read_model_file(path("tiny.faltung"));
  EXPECT_EQ(f.version, 1u);
  EXPECT_EQ(f.scalar_size, 4u);
  EXPECT_EQ(f.input_shape, (Shape{3}));
  EXPECT_EQ(f.spec, "dense:2");
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[0].name, "kernel");
  EXPECT_EQ(f.tensors[0].shape, (Shape{3, 2}));
  EXPECT_EQ(f.tensors[1].name, "bias");
}

TEST_F(ModelFileTest, DoubleFilesStoreEightByteScalars) {
  auto net = make_sequential<double>("dense:2", {3});
  save_model(net, path("d.faltung"));
  const Bytes b = read_bytes(path("d.faltung"));
  ASSERT_GE(b.size(), 16u);
  EXPECT_EQ(b[12], 8);
  // header 16 + shape 12 + spec 11 + count 4 + kernel (10 + 20 + 48) + bias (8 + 12 + 16) + checksum 8
  EXPECT_EQ(b.size(), 16u + 12 + 11 + 4 + 78 + 36 + 8);
}

// ---------------------------------------------------------------------------------------------
// Round trips

TEST_F(ModelFileTest, FloatRoundTripIsBitwise) {
  Sequential<float> net = trained_model<float>();
  net.save(path("m.faltung"));
  Sequential<float> other = make_sequential<float>(small_cnn, {1, 8, 8}, 99);
  other.load_weights(path("m.faltung"));
  expect_same_parameters(net, other);

  const Tensor<float> x = random_batch<float>({1, 8, 8}, 7, 5);
  const Tensor<float> a = infer(net, x), b = infer(other, x);
  ASSERT_EQ(a.shape(), b.shape());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  other.compile(SparseCrossEntropy{}, Adam<float>());
  const Tensor<float> pa = net.predict(x), pb = other.predict(x);
  EXPECT_EQ(std::memcmp(pa.data(), pb.data(), pa.size() * sizeof(float)), 0);
}

TEST_F(ModelFileTest, DoubleRoundTripIsBitwise) {
  Sequential<double> net = trained_model<double>();
  save_model(net, path("m.faltung"));
  Sequential<double> other = make_sequential<double>(small_cnn, {1, 8, 8}, 99);
  load_weights(other, path("m.faltung"));
  expect_same_parameters(net, other);
  const Tensor<double> x = random_batch<double>({1, 8, 8}, 7, 5);
  const Tensor<double> a = infer(net, x), b = infer(other, x);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(double)), 0);
}

TEST_F(ModelFileTest, LoadModelRebuildsTheArchitecture) {
  Sequential<float> net = trained_model<float>();
  net.save(path("m.faltung"));
  Sequential<float> loaded = load_model<float>(path("m.faltung"));
  EXPECT_TRUE(loaded.built());
  EXPECT_EQ(loaded.spec(), net.spec());
  EXPECT_EQ(loaded.input_shape(), (Shape{1, 8, 8}));
  EXPECT_EQ(loaded.size(), net.size());
  EXPECT_EQ(loaded.parameter_count(), net.parameter_count());
  expect_same_parameters(net, loaded);
  const Tensor<float> x = random_batch<float>({1, 8, 8}, 4, 6);
  const Tensor<float> a = infer(net, x), b = infer(loaded, x);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  // The lecture network, saved and rebuilt.
  auto big = make_sequential<float>(
      "conv:128:3:same:relu,pool:2,drop:0.5,conv:64:3:same:relu,pool:2,flatten,dense:512:relu,drop:0.5,"
      "dense:256:relu,drop:0.5,dense:10",
      {1, 28, 28});
  big.save(path("big.faltung"));
  auto big2 = load_model<float>(path("big.faltung"));
  EXPECT_EQ(big2.parameter_count(), 1815114u);
  expect_same_parameters(big, big2);
}

TEST_F(ModelFileTest, LoadModelSurvivesRoundedRatesInTheSpec) {
  // LeakyReLU prints its slope to 6 digits, so this spec prints as leaky_relu=0.3 but reads
  // back as the default, which prints as leaky_relu: load_model must still load it.
  Sequential<float> net;
  net.add<Flatten>().add<Dense>(4).add(LeakyReLU<float>(0.30000001)).add<Dropout>(0.1234567);
  net.build({2, 2});
  net.save(path("m.faltung"));
  Sequential<float> loaded = load_model<float>(path("m.faltung"));
  expect_same_parameters(net, loaded);
}

TEST_F(ModelFileTest, FloatAndDoubleFilesConvert) {
  Sequential<float> f = trained_model<float>();
  f.save(path("f.faltung"));
  Sequential<double> d = load_model<double>(path("f.faltung"));
  auto pf = f.parameters();
  auto pd = d.parameters();
  ASSERT_EQ(pf.size(), pd.size());
  for (std::size_t i = 0; i < pf.size(); ++i)
    for (std::size_t j = 0; j < pf[i]->value.size(); ++j) ASSERT_EQ(pd[i]->value[j], double(pf[i]->value[j]));

  Sequential<double> d2 = trained_model<double>();
  d2.save(path("d.faltung"));
  Sequential<float> f2 = make_sequential<float>(small_cnn, {1, 8, 8});
  f2.load_weights(path("d.faltung"));
  auto pd2 = d2.parameters();
  auto pf2 = f2.parameters();
  for (std::size_t i = 0; i < pf2.size(); ++i)
    for (std::size_t j = 0; j < pf2[i]->value.size(); ++j) ASSERT_EQ(pf2[i]->value[j], float(pd2[i]->value[j]));
}

TEST_F(ModelFileTest, SavingAgainReplacesTheFile) {
  Sequential<float> a = make_sequential<float>("flatten,dense:3", {4}, 1);
  Sequential<float> b = make_sequential<float>("flatten,dense:3", {4}, 2);
  a.save(path("m.faltung"));
  b.save(path("m.faltung"));
  Sequential<float> c = make_sequential<float>("flatten,dense:3", {4}, 3);
  c.load_weights(path("m.faltung"));
  expect_same_parameters(b, c);
  EXPECT_EQ(listing(), std::vector<std::string>{"m.faltung"});
}

TEST_F(ModelFileTest, GenericOverTheModelType) {
  TinyModel m;
  for (std::size_t i = 0; i < 6; ++i) m.w_.value[i] = 0.1 * double(i);
  save_model(m, path("tiny.faltung"));
  TinyModel n;
  load_weights(n, path("tiny.faltung"));
  for (std::size_t i = 0; i < 6; ++i) EXPECT_EQ(n.w_.value[i], m.w_.value[i]);

  TinyModel other_shape;
  other_shape.w_ = Parameter<double>("w", Shape{3, 2});
  expect_error([&] { load_weights(other_shape, path("tiny.faltung")); },
               {path("tiny.faltung"),
                "parameter 0 is 'w' of shape (2, 3) in the file but 'w' of shape (3, 2) in the model"});
}

TEST_F(ModelFileTest, ModelCheckpointSavesThroughFit) {
  Sequential<float> net = make_sequential<float>("flatten,dense:8:relu,dense:3", {2, 2}, 5);
  net.compile(SparseCrossEntropy{}, Adam<float>());
  const Tensor<float> x = random_batch<float>({2, 2}, 40, 1);
  const Tensor<float> y = random_labels<float>(40, 3, 2);
  auto checkpoint = std::make_shared<ModelCheckpoint>(path("ckpt.faltung"));
  checkpoint->save_best_only(false);
  net.fit(x, y, FitOptions().epochs(2).batch_size(8).verbose(0).callbacks({checkpoint}));
  EXPECT_EQ(checkpoint->saves(), 2);
  Sequential<float> loaded = load_model<float>(path("ckpt.faltung"));
  expect_same_parameters(net, loaded);
  EXPECT_EQ(listing(), std::vector<std::string>{"ckpt.faltung"});
}

// ---------------------------------------------------------------------------------------------
// Bad files

TEST_F(ModelFileTest, MissingFile) {
  Sequential<float> net = make_sequential<float>("dense:2", {3});
  const std::string p = path("nope.faltung");
  expect_error([&] { net.load_weights(p); }, {"cannot load '" + p + "'", "cannot open it", "No such file"});
  expect_error([&] { load_model<float>(p); }, {"cannot load '" + p + "'", "No such file"});
  expect_error([&] { load_model<float>(dir_.string()); }, {"cannot load '" + dir_.string() + "'"});
}

TEST_F(ModelFileTest, WrongMagic) {
  Sequential<float> net = make_sequential<float>("dense:2", {3});
  write_bytes(path("a.txt"), Bytes{'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '\n'});
  expect_error([&] { net.load_weights(path("a.txt")); },
               {"cannot load '" + path("a.txt") + "': not a faltung model file", "FALTUNG"});
  write_bytes(path("empty"), Bytes{});
  expect_error([&] { net.load_weights(path("empty")); }, {path("empty"), "not a faltung model file (it is empty)"});
  write_bytes(path("short"), Bytes{'F', 'A', 'X'});
  expect_error([&] { net.load_weights(path("short")); }, {path("short"), "not a faltung model file"});
}

TEST_F(ModelFileTest, UnsupportedVersion) {
  Sequential<float> net = make_sequential<float>("dense:2", {3});
  net.save(path("m.faltung"));
  Bytes b = read_bytes(path("m.faltung"));
  b[8] = 2;
  write_bytes(path("v2.faltung"), b);
  expect_error([&] { net.load_weights(path("v2.faltung")); },
               {"cannot load '" + path("v2.faltung") + "'", "format version 2", "reads only version 1"});
}

TEST_F(ModelFileTest, TruncatedAtEveryKindOfPlace) {
  Sequential<float> net = trained_model<float>();
  net.save(path("m.faltung"));
  const Bytes whole = read_bytes(path("m.faltung"));
  Sequential<float> target = make_sequential<float>(small_cnn, {1, 8, 8}, 99);
  Sequential<float> before = target;
  const std::size_t spec_at = 16 + 4 + 3 * 8 + 4;  // after header, input shape, spec length
  for (std::size_t cut : {std::size_t(4), std::size_t(8), std::size_t(10), std::size_t(14), std::size_t(18),
                          std::size_t(30), spec_at + 5, spec_at + 60, whole.size() / 2, whole.size() - 9,
                          whole.size() - 8, whole.size() - 1}) {
    SCOPED_TRACE("cut at " + std::to_string(cut) + " of " + std::to_string(whole.size()));
    const std::string p = path("cut.faltung");
    write_bytes(p, Bytes(whole.begin(), whole.begin() + std::ptrdiff_t(cut)));
    expect_error([&] { target.load_weights(p); }, {"cannot load '" + p + "'", "truncated"});
    expect_error([&] { load_model<float>(p); }, {"cannot load '" + p + "'", "truncated"});
  }
  expect_same_parameters(target, before);  // a failed load changes nothing
}

TEST_F(ModelFileTest, FlippedByteIsCorrupt) {
  Sequential<float> net = trained_model<float>();
  net.save(path("m.faltung"));
  const Bytes whole = read_bytes(path("m.faltung"));
  Sequential<float> target = make_sequential<float>(small_cnn, {1, 8, 8}, 99);
  Sequential<float> before = target;
  const std::size_t spec_at = 16 + 4 + 3 * 8 + 4;
  for (std::size_t at :
       {spec_at, spec_at + 3, whole.size() / 2, whole.size() - 20, whole.size() - 8, whole.size() - 1}) {
    SCOPED_TRACE("byte " + std::to_string(at));
    Bytes b = whole;
    b[at] ^= 0x04;
    const std::string p = path("flip.faltung");
    write_bytes(p, b);
    expect_error([&] { target.load_weights(p); }, {"cannot load '" + p + "'", "corrupt", "checksum mismatch"});
    expect_error([&] { load_model<float>(p); }, {"corrupt"});
  }
  // A byte appended after the checksum.
  Bytes longer = whole;
  longer.push_back(0);
  write_bytes(path("long.faltung"), longer);
  expect_error([&] { target.load_weights(path("long.faltung")); }, {path("long.faltung"), "corrupt"});
  expect_same_parameters(target, before);
}

TEST_F(ModelFileTest, EveryDamagedByteIsAnErrorNeverACrash) {
  Sequential<double> net = make_sequential<double>("dense:2", {3});
  net.save(path("m.faltung"));
  const Bytes whole = read_bytes(path("m.faltung"));
  Sequential<double> target = make_sequential<double>("dense:2", {3}, 7);
  Sequential<double> before = target;
  const std::string p = path("bad.faltung");
  for (std::size_t at = 0; at < whole.size(); ++at)
    for (unsigned mask : {0x01u, 0x80u, 0xffu}) {
      Bytes b = whole;
      b[at] = static_cast<unsigned char>(b[at] ^ mask);
      write_bytes(p, b);
      EXPECT_THROW(target.load_weights(p), Error) << "byte " << at << " ^ " << mask;
    }
  expect_same_parameters(target, before);
}

TEST_F(ModelFileTest, LengthFieldsAreNeverTrusted) {
  Sequential<float> net = make_sequential<float>("dense:2", {3});
  auto header = [] {
    Encoder e;
    e.raw("FALTUNG\n", 8);
    e.u32(1);
    e.u32(4);
    return e;
  };
  {  // a 4 GiB architecture string
    Encoder e = header();
    e.u32(1);
    e.u64(3);
    e.u32(0xfffffff0u);
    e.raw("dense:2", 7);
    e.checksum();
    write_bytes(path("a"), e.b);
    expect_error([&] { net.load_weights(path("a")); }, {path("a"), "truncated", "the architecture"});
  }
  {  // four billion parameter tensors
    Encoder e = header();
    e.u32(1);
    e.u64(3);
    e.str("dense:2");
    e.u32(0xffffffffu);
    e.checksum();
    write_bytes(path("b"), e.b);
    expect_error([&] { net.load_weights(path("b")); }, {path("b"), "claims 4294967295 parameter tensors"});
  }
  {  // a tensor of 2^40 x 2^40 elements: the size must not overflow
    Encoder e = header();
    e.u32(1);
    e.u64(3);
    e.str("dense:2");
    e.u32(1);
    e.str("kernel");
    e.u32(2);
    e.u64(std::uint64_t(1) << 40);
    e.u64(std::uint64_t(1) << 40);
    e.f32(1.0f);
    e.checksum();
    write_bytes(path("c"), e.b);
    expect_error([&] { net.load_weights(path("c")); }, {path("c"), "truncated", "parameter 0 ('kernel') values"});
  }
  {  // a rank beyond any shape
    Encoder e = header();
    e.u32(200);
    e.checksum();
    write_bytes(path("d"), e.b);
    expect_error([&] { net.load_weights(path("d")); }, {path("d"), "corrupt", "rank 200"});
  }
  {  // an unknown scalar size
    Encoder e = header();
    e.b[12] = 2;
    e.checksum();
    write_bytes(path("e"), e.b);
    expect_error([&] { net.load_weights(path("e")); }, {path("e"), "scalar size 2"});
  }
}

TEST_F(ModelFileTest, AnotherArchitecture) {
  Sequential<float> a = make_sequential<float>("flatten,dense:10", {1, 4, 4});
  a.save(path("a.faltung"));
  Sequential<float> b = make_sequential<float>("flatten,dense:10:relu", {1, 4, 4});
  Sequential<float> before = b;
  expect_error([&] { b.load_weights(path("a.faltung")); },
               {"cannot load '" + path("a.faltung") + "'", "another architecture", "file:  flatten,dense:10\n",
                "model: flatten,dense:10:relu"});
  Sequential<float> c = make_sequential<float>("flatten,dense:12", {1, 4, 4});
  expect_error([&] { c.load_weights(path("a.faltung")); }, {"file:  flatten,dense:10", "model: flatten,dense:12"});
  expect_same_parameters(b, before);
}

TEST_F(ModelFileTest, AnotherInputShape) {
  Sequential<float> a = make_sequential<float>("flatten,dense:10", {1, 4, 4});
  a.save(path("a.faltung"));
  Sequential<float> b = make_sequential<float>("flatten,dense:10", {16});  // same parameter shapes
  expect_error([&] { b.load_weights(path("a.faltung")); },
               {"cannot load '" + path("a.faltung") + "'", "input shape (1, 4, 4)", "built for (16)"});
}

TEST_F(ModelFileTest, UnbuiltModels) {
  Sequential<float> built = make_sequential<float>("flatten,dense:10", {16});
  built.save(path("a.faltung"));
  Sequential<float> unbuilt;
  add_layers(unbuilt, "flatten,dense:10");
  expect_error([&] { unbuilt.load_weights(path("a.faltung")); }, {path("a.faltung"), "build it first", "(16)"});
  expect_error([&] { unbuilt.save(path("b.faltung")); }, {"cannot save '" + path("b.faltung") + "'", "build"});
  EXPECT_EQ(listing(), std::vector<std::string>{"a.faltung"});
}

TEST_F(ModelFileTest, ArchitectureThatCannotBeRebuilt) {
  bool armed = false;
  Sequential<float> net;
  net.add<Flatten>().add(std::make_unique<Exploding<float>>(&armed));
  net.build({4});
  net.save(path("custom.faltung"));
  // load_weights into the same kind of model works; load_model cannot know the custom layer.
  Sequential<float> same;
  same.add<Flatten>().add(std::make_unique<Exploding<float>>(&armed));
  same.build({4});
  EXPECT_NO_THROW(same.load_weights(path("custom.faltung")));
  expect_error([&] { load_model<float>(path("custom.faltung")); },
               {"cannot load '" + path("custom.faltung") + "': its architecture: layer 2 'exploding': unknown layer"});
}

// ---------------------------------------------------------------------------------------------
// Failed saves

TEST_F(ModelFileTest, SaveIntoMissingDirectory) {
  Sequential<float> net = make_sequential<float>("dense:2", {3});
  const std::string p = path("no/such/dir/m.faltung");
  expect_error([&] { net.save(p); }, {"cannot save '" + p + "'", "temporary file", "No such file"});
  EXPECT_TRUE(listing().empty());
}

TEST_F(ModelFileTest, SaveOverADirectoryFailsAtTheRenameAndCleansUp) {
  Sequential<float> net = make_sequential<float>("dense:2", {3});
  fs::create_directory(path("adir"));
  expect_error([&] { net.save(path("adir")); }, {"cannot save '" + path("adir") + "'", "cannot rename"});
  EXPECT_TRUE(fs::is_directory(path("adir")));
  EXPECT_EQ(listing(), std::vector<std::string>{"adir"});
}

TEST_F(ModelFileTest, ExceptionMidSaveKeepsThePreviousFile) {
  Sequential<float> good = trained_model<float>();
  good.save(path("m.faltung"));
  const Bytes previous = read_bytes(path("m.faltung"));

  bool armed = false;
  Sequential<float> net;
  net.add<Flatten>().add<Dense>(3).add(std::make_unique<Exploding<float>>(&armed));
  net.build({4});
  armed = true;
  expect_error([&] { net.save(path("m.faltung")); }, {"Exploding: parameters() failed"});
  EXPECT_EQ(read_bytes(path("m.faltung")), previous);
  EXPECT_EQ(listing(), std::vector<std::string>{"m.faltung"});
}

#if FALTUNG_TEST_POSIX
TEST_F(ModelFileTest, DiskFullKeepsThePreviousFile) {
  // A file size limit makes write() fail with EFBIG, as a full disk fails with ENOSPC; it
  // applies to root too, so the test does not depend on permissions.
  Sequential<float> small = make_sequential<float>("dense:2", {3});
  small.save(path("m.faltung"));
  const Bytes previous = read_bytes(path("m.faltung"));
  Sequential<float> big = make_sequential<float>("dense:1024", {64});  // 256 KiB of weights

  struct rlimit old_limit;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit limit = old_limit;
  limit.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
  std::string message;
  try {
    big.save(path("m.faltung"));
  } catch (const Error& e) {
    message = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, old_handler);

  EXPECT_NE(message.find("cannot save '" + path("m.faltung") + "'"), std::string::npos) << message;
  EXPECT_NE(message.find("cannot write the temporary file"), std::string::npos) << message;
  EXPECT_EQ(read_bytes(path("m.faltung")), previous);
  EXPECT_EQ(listing(), std::vector<std::string>{"m.faltung"});
}

TEST_F(ModelFileTest, ReplacingKeepsThePermissions) {
  Sequential<float> net = make_sequential<float>("dense:2", {3});
  net.save(path("m.faltung"));
  ASSERT_EQ(::chmod(path("m.faltung").c_str(), 0600), 0);
  net.save(path("m.faltung"));
  struct stat st;
  ASSERT_EQ(::stat(path("m.faltung").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}
#endif
