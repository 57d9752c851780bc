// Model files (io/model_file.hpp): the byte layout, bitwise round trips in float and double,
// load_model, a clear error naming the file for every kind of bad file, and saves that fail
// without touching the previous file or leaving a temporary behind.

#include <gtest/gtest.h>

#include <faltung/losses/binary_cross_entropy.hpp>
#include <faltung/losses/cross_entropy.hpp>
#include <faltung/losses/mean_squared_error.hpp>
#include <faltung/io/load_model.hpp>
#include <faltung/model/architecture.hpp>
#include <faltung/optimizers/adam.hpp>
#include <faltung/optimizers/sgd.hpp>

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
  void f64(double f) {
    std::uint64_t u;
    std::memcpy(&u, &f, 8);
    u64(u);
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
  net.compile(SparseCrossEntropy{}, Adam<float>());
  net.set_class_names({"no", "yes"});
  auto params = net.parameters();
  for (std::size_t i = 0; i < params[0]->value.size(); ++i) params[0]->value[i] = float(i) + 0.5f;
  params[1]->value[0] = -1.0f;
  params[1]->value[1] = 2.25f;
  save_model(net, path("tiny.faltung"));

  Encoder e;
  e.raw("FALTUNG\n", 8);
  e.u32(2);  // format version
  e.u32(4);  // float
  e.u32(1);  // input rank
  e.u64(3);
  e.str("dense:2");
  e.u32(1);  // layer names
  e.str("dense");
  e.str("sparse_categorical_crossentropy");
  e.str("softmax");
  e.f64(0.3);
  e.u32(2);  // class names
  e.str("no");
  e.str("yes");
  e.u32(2);  // parameter tensors
  e.str("dense");
  e.str("kernel");
  e.u32(2);
  e.u64(3);
  e.u64(2);
  for (int i = 0; i < 6; ++i) e.f32(float(i) + 0.5f);
  e.str("dense");
  e.str("bias");
  e.u32(1);
  e.u64(2);
  e.f32(-1.0f);
  e.f32(2.25f);
  e.checksum();
  EXPECT_EQ(read_bytes(path("tiny.faltung")), e.b);

  const ModelFile f = read_model_file(path("tiny.faltung"));
  EXPECT_EQ(f.version, 2u);
  EXPECT_EQ(f.scalar_size, 4u);
  EXPECT_EQ(f.input_shape, (Shape{3}));
  EXPECT_EQ(f.spec, "dense:2");
  EXPECT_EQ(f.layer_names, std::vector<std::string>{"dense"});
  EXPECT_EQ(f.inference.loss, "sparse_categorical_crossentropy");
  EXPECT_EQ(f.inference.output_activation, Activation(ActivationKind::Softmax));
  EXPECT_EQ(f.inference.class_names, (std::vector<std::string>{"no", "yes"}));
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[0].layer, "dense");
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
  // header 16 + shape 12 + spec 11 + layer names (4 + 9) + loss 4 + activation (10 + 8) + class
  // names 4 + count 4 + kernel (9 + 10 + 20 + 48) + bias (9 + 8 + 12 + 16) + checksum 8
  EXPECT_EQ(b.size(), 16u + 12 + 11 + 13 + 4 + 18 + 4 + 4 + 87 + 45 + 8);
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
  for (unsigned char version : {0, 3}) {
    b[8] = version;
    write_bytes(path("v.faltung"), b);
    expect_error([&] { net.load_weights(path("v.faltung")); },
                 {"cannot load '" + path("v.faltung") + "'", "format version " + std::to_string(version),
                  "reads versions 1 to 2"});
  }
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

// ---------------------------------------------------------------------------------------------
// What inference needs: the loss's output activation and the class names (format version 2)

namespace {

template <class T>
bool bitwise_equal(const Tensor<T>& a, const Tensor<T>& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

/// Trains `net` a few steps with `loss` on (x, y), saves it, loads it with load_model and
/// expects the loaded model's predict to be bitwise the trained one's, without compiling it.
template <class T, class L>
void expect_loaded_predict_is_bitwise(const std::string& file, Sequential<T> net, const L& loss, const Tensor<T>& x,
                                      const Tensor<T>& y, Activation expected) {
  net.compile(loss, SGD<T>(SGDOptions(0.05)));
  for (int i = 0; i < 3; ++i) net.train_on_batch(x, y);
  net.save(file);
  Sequential<T> loaded = load_model<T>(file);
  EXPECT_FALSE(loaded.compiled());
  EXPECT_EQ(loaded.output_activation(), expected);
  EXPECT_EQ(loaded.inference_config().loss, loss.name());
  const Tensor<T> trained = net.predict(x), restored = loaded.predict(x);
  EXPECT_TRUE(bitwise_equal(trained, restored)) << loss.name();
  EXPECT_EQ(loaded.predict_classes(x), net.predict_classes(x));
}

}  // namespace

TEST_F(ModelFileTest, LoadedModelPredictsExactlyWhatTheTrainedOneDid) {
  const Tensor<float> x = random_batch<float>({1, 8, 8}, 9, 21);
  Sequential<float> trained = trained_model<float>();
  trained.save(path("m.faltung"));
  Sequential<float> loaded = load_model<float>(path("m.faltung"));
  const Tensor<float> p = loaded.predict(x);
  EXPECT_TRUE(bitwise_equal(trained.predict(x), p));
  for (std::size_t i = 0; i < p.dim(0); ++i) {  // probabilities, not logits
    double sum = 0;
    for (std::size_t j = 0; j < 5; ++j) sum += p[i * 5 + j];
    EXPECT_NEAR(sum, 1.0, 1e-5) << "row " << i;
  }
  EXPECT_FALSE(bitwise_equal(infer(loaded, x), p));  // the raw outputs are not what predict gives

  // Each loss's output activation, in float and double.
  const Tensor<float> labels = random_labels<float>(9, 5, 22);
  Tensor<float> one_hot(Shape{9, 5}), binary(Shape{9, 5}), targets(Shape{9, 5});
  for (std::size_t i = 0; i < 9; ++i)
    for (std::size_t j = 0; j < 5; ++j) {
      one_hot[i * 5 + j] = std::size_t(labels[i]) == j ? 1.0f : 0.0f;
      binary[i * 5 + j] = float((i + j) % 2);
      targets[i * 5 + j] = float(i) * 0.1f - float(j) * 0.2f;
    }
  const auto net = [] { return make_sequential<float>(small_cnn, {1, 8, 8}, 4); };
  expect_loaded_predict_is_bitwise(path("sparse.faltung"), net(), SparseCrossEntropy{}, x, labels,
                                   ActivationKind::Softmax);
  expect_loaded_predict_is_bitwise(path("logits.faltung"), net(), CategoricalCrossEntropy(true), x, one_hot,
                                   ActivationKind::Softmax);
  expect_loaded_predict_is_bitwise(path("binary.faltung"), net(), BinaryCrossEntropy{}, x, binary,
                                   ActivationKind::Sigmoid);
  expect_loaded_predict_is_bitwise(path("mse.faltung"), net(), MeanSquaredError{}, x, targets,
                                   ActivationKind::Linear);
  // A network that ends in its own softmax, for a loss on probabilities: predict adds nothing.
  expect_loaded_predict_is_bitwise(path("probs.faltung"), make_sequential<float>("flatten,dense:5,softmax", {1, 8, 8}),
                                   CategoricalCrossEntropy(false), x, one_hot, ActivationKind::Linear);
  const Tensor<double> xd = random_batch<double>({1, 8, 8}, 9, 23);
  const Tensor<double> yd = random_labels<double>(9, 5, 24);
  expect_loaded_predict_is_bitwise(path("double.faltung"), make_sequential<double>(small_cnn, {1, 8, 8}, 4),
                                   SparseCrossEntropy{}, xd, yd, ActivationKind::Softmax);
}

TEST_F(ModelFileTest, InferenceConfigurationOfUncompiledAndRecompiledModels) {
  // Never compiled: no loss, the outputs as they are, before and after the file.
  Sequential<float> raw = make_sequential<float>("flatten,dense:3", {4});
  EXPECT_EQ(raw.output_activation(), Activation(ActivationKind::Linear));
  raw.save(path("raw.faltung"));
  Sequential<float> loaded_raw = load_model<float>(path("raw.faltung"));
  EXPECT_EQ(loaded_raw.inference_config().loss, "");
  EXPECT_EQ(loaded_raw.output_activation(), Activation(ActivationKind::Linear));

  // A loaded model compiled with another loss predicts with that loss's activation, and saves it.
  Sequential<float> net = make_sequential<float>("flatten,dense:3", {4});
  net.compile(BinaryCrossEntropy{}, Adam<float>());
  net.save(path("m.faltung"));
  Sequential<float> loaded = load_model<float>(path("m.faltung"));
  EXPECT_EQ(loaded.output_activation(), Activation(ActivationKind::Sigmoid));
  loaded.compile(SparseCrossEntropy{}, Adam<float>());
  EXPECT_EQ(loaded.output_activation(), Activation(ActivationKind::Softmax));
  loaded.save(path("again.faltung"));
  EXPECT_EQ(read_model_file(path("again.faltung")).inference.loss, "sparse_categorical_crossentropy");

  // A copy keeps the loaded configuration; load_weights alone does not change it.
  Sequential<float> copy = load_model<float>(path("m.faltung"));
  Sequential<float> copied = copy;
  EXPECT_EQ(copied.output_activation(), Activation(ActivationKind::Sigmoid));
  Sequential<float> fresh = make_sequential<float>("flatten,dense:3", {4});
  fresh.load_weights(path("m.faltung"));
  EXPECT_EQ(fresh.output_activation(), Activation(ActivationKind::Linear));
}

TEST_F(ModelFileTest, ClassNames) {
  Sequential<float> net = make_sequential<float>("flatten,dense:3", {4});
  EXPECT_TRUE(net.class_names().empty());
  net.set_class_names({"cat", "dog", "bird"});
  net.save(path("m.faltung"));
  Sequential<float> loaded = load_model<float>(path("m.faltung"));
  EXPECT_EQ(loaded.class_names(), (std::vector<std::string>{"cat", "dog", "bird"}));
  Sequential<double> as_double = load_model<double>(path("m.faltung"));
  EXPECT_EQ(as_double.class_names(), loaded.class_names());

  expect_error([&] { net.set_class_names({"cat", "dog"}); },
               {"Sequential::set_class_names: 2 class names for 3 outputs per sample (output shape (3))"});
  expect_error([&] { net.set_class_names({"cat", "", "bird"}); }, {"class name 1 is empty"});
  EXPECT_EQ(net.class_names().size(), 3u);  // a refused set changes nothing
  // Set before build, checked by build.
  Sequential<float> unbuilt;
  add_layers(unbuilt, "flatten,dense:3");
  unbuilt.set_class_names({"a", "b"});
  expect_error([&] { unbuilt.build({4}); }, {"Sequential::build", "2 class names for 3 outputs"});
  // A new head drops the old head's names.
  loaded.pop();
  EXPECT_TRUE(loaded.class_names().empty());
  net.set_class_names({});
  EXPECT_TRUE(net.class_names().empty());
}

TEST_F(ModelFileTest, LayerNamesAreRestored) {
  Sequential<float> net;
  net.add<Flatten>().add<Dense>(4).add(Dense<float>(2));
  net.layer(2).set_name("head");
  net.build({2, 2});
  net.save(path("m.faltung"));
  Sequential<float> loaded = load_model<float>(path("m.faltung"));
  EXPECT_EQ(loaded.layer_names(), (std::vector<std::string>{"flatten", "dense", "head"}));
  // A layer added to the loaded model gets a name of its own.
  loaded.add<Dense>(2);
  EXPECT_EQ(loaded.layer_names().back(), "dense_2");
}

// ---------------------------------------------------------------------------------------------
// Version 1 files

namespace {

/// A version 1 file, as faltung wrote before the format carried the loss: dense:2 on (3).
Bytes version1_file(const std::vector<float>& kernel, const std::vector<float>& bias) {
  Encoder e;
  e.raw("FALTUNG\n", 8);
  e.u32(1);
  e.u32(4);
  e.u32(1);
  e.u64(3);
  e.str("dense:2");
  e.u32(2);
  e.str("kernel");
  e.u32(2);
  e.u64(3);
  e.u64(2);
  for (float v : kernel) e.f32(v);
  e.str("bias");
  e.u32(1);
  e.u64(2);
  for (float v : bias) e.f32(v);
  e.checksum();
  return e.b;
}

}  // namespace

TEST_F(ModelFileTest, Version1FilesLoadAndPredictRawOutputsUntilCompiled) {
  const std::vector<float> kernel = {0.5f, -1, 2, 0.25f, -0.5f, 1}, bias = {0.1f, -0.2f};
  write_bytes(path("v1.faltung"), version1_file(kernel, bias));
  const ModelFile f = read_model_file(path("v1.faltung"));
  EXPECT_EQ(f.version, 1u);
  EXPECT_TRUE(f.layer_names.empty());
  EXPECT_EQ(f.inference.loss, "");

  Sequential<float> loaded = load_model<float>(path("v1.faltung"));
  EXPECT_EQ(loaded.layer_names(), std::vector<std::string>{"dense"});
  EXPECT_EQ(loaded.output_activation(), Activation(ActivationKind::Linear));
  Tensor<float> x(Shape{1, 3});
  x[0] = 1;
  x[1] = 2;
  x[2] = 3;
  const Tensor<float> raw = loaded.predict(x);  // x . kernel + bias, no softmax
  EXPECT_FLOAT_EQ(raw[0], 1 * 0.5f + 2 * 2 + 3 * -0.5f + 0.1f);
  EXPECT_FLOAT_EQ(raw[1], 1 * -1.0f + 2 * 0.25f + 3 * 1 - 0.2f);
  loaded.compile(SparseCrossEntropy{}, Adam<float>());
  const Tensor<float> p = loaded.predict(x);
  EXPECT_NEAR(p[0] + p[1], 1.0, 1e-6);

  Sequential<float> into = make_sequential<float>("dense:2", {3});
  into.load_weights(path("v1.faltung"));
  expect_error([&] { into.load_weights(path("v1.faltung"), LoadWeightsOptions().by_name(true)); },
               {"cannot load '" + path("v1.faltung") + "' by layer name", "stores no layer names (format version 1)",
                "save it again"});
  // Saved again, it is a version 2 file with the compiled loss.
  loaded.save(path("v2.faltung"));
  EXPECT_EQ(read_model_file(path("v2.faltung")).version, 2u);
  EXPECT_EQ(load_model<float>(path("v2.faltung")).output_activation(), Activation(ActivationKind::Softmax));
}

// ---------------------------------------------------------------------------------------------
// Loading weights by layer name

TEST_F(ModelFileTest, LoadWeightsByNameIntoAModelThatSharesSomeLayers) {
  Sequential<float> base = trained_model<float>();  // conv2d, max_pooling2d, dropout, flatten, dense, dropout_1, dense_1
  base.save(path("base.faltung"));

  // The same base, a new head of another size under a name of its own, and one more layer.
  Sequential<float> net = make_sequential<float>("conv:4:3:same:relu,pool:2,drop:0.25,flatten,dense:16:relu", {1, 8, 8}, 9);
  net.add(Dense<float>(3)).add(Dense<float>(2));
  net.layer(5).set_name("head");
  net.layer(6).set_name("extra");
  net.build({1, 8, 8});
  const std::vector<Tensor<float>> before = [&] {
    std::vector<Tensor<float>> w;
    for (Parameter<float>* p : net.parameters()) w.push_back(p->value);
    return w;
  }();
  const std::vector<std::string> loaded = net.load_weights(path("base.faltung"), LoadWeightsOptions().by_name(true));
  EXPECT_EQ(loaded, (std::vector<std::string>{"conv2d", "dense"}));
  const auto from = base.parameters(), to = net.parameters();
  for (std::size_t i = 0; i < 4; ++i) EXPECT_TRUE(bitwise_equal(from[i]->value, to[i]->value)) << "parameter " << i;
  for (std::size_t i = 4; i < to.size(); ++i) EXPECT_TRUE(bitwise_equal(before[i], to[i]->value)) << "parameter " << i;
  // With default names, the new head is "dense_1" as the old one (5 units) in the file was: a
  // mismatch, named, and nothing loaded.
  Sequential<float> clash = make_sequential<float>("conv:4:3:same:relu,pool:2,drop:0.25,flatten,dense:16:relu,dense:3,dense:2",
                                                   {1, 8, 8}, 9);
  Sequential<float> clash_before = clash;
  expect_error([&] { load_weights_by_name(clash, path("base.faltung")); },
               {"cannot load '" + path("base.faltung") + "' by layer name",
                "layer 'dense_1' has kernel (16, 5), bias (5) in the file but kernel (16, 3), bias (3) in the model"});
  expect_same_parameters(clash, clash_before);
  // The whole model by name loads every layer, the same as load_weights.
  Sequential<float> same = make_sequential<float>(small_cnn, {1, 8, 8}, 10);
  EXPECT_EQ(same.load_weights(path("base.faltung"), LoadWeightsOptions()),
            (std::vector<std::string>{"conv2d", "dense", "dense_1"}));
  expect_same_parameters(same, base);
  Sequential<float> by_name = make_sequential<float>(small_cnn, {1, 8, 8}, 10);
  EXPECT_EQ(load_weights_by_name(by_name, path("base.faltung")), (std::vector<std::string>{"conv2d", "dense", "dense_1"}));
  expect_same_parameters(by_name, base);
}

TEST_F(ModelFileTest, LoadWeightsByNameErrors) {
  Sequential<float> a = make_sequential<float>("flatten,dense:3,dense:2", {4});
  a.save(path("a.faltung"));
  // A layer of that name without parameters in the model, with some in the file.
  Sequential<float> b;
  b.add<Flatten>().add<Flatten>();
  b.layer(1).set_name("dense");
  b.build({4});
  expect_error([&] { load_weights_by_name(b, path("a.faltung")); },
               {"layer 'dense' has kernel (4, 3), bias (3) in the file but no parameters in the model"});
  // Two layers of the model with one name.
  Sequential<float> c = make_sequential<float>("flatten,dense:3,dense:2", {4});
  c.layer(2).set_name("dense");
  expect_error([&] { load_weights_by_name(c, path("a.faltung")); }, {"the model has two layers named 'dense'"});
  // Two layers of the file with one name that the model has.
  c.layer(2).set_name("dense_1");
  a.layer(2).set_name("dense");
  a.save(path("twice.faltung"));
  expect_error([&] { load_weights_by_name(c, path("twice.faltung")); },
               {"the file has 2 layers named 'dense'", "ambiguous"});
  // Not built.
  Sequential<float> unbuilt;
  add_layers(unbuilt, "flatten,dense:3");
  expect_error([&] { load_weights_by_name(unbuilt, path("a.faltung")); }, {"by layer name: build the model first"});
  // Nothing in common: nothing loaded, no error.
  Sequential<float> other = make_sequential<float>("flatten,dense:3", {4});
  other.layer(1).set_name("mine");
  EXPECT_TRUE(load_weights_by_name(other, path("a.faltung")).empty());
}

// ---------------------------------------------------------------------------------------------
// Files that lie: each refused with its message before anything is built

TEST_F(ModelFileTest, FileClaimingAHugeArchitectureIsRefusedBeforeBuilding) {
  // The file: 56 bytes claiming dense:250000 on 784 inputs, 196 million parameters
  // (785 MB of float), with a valid checksum and no weights at all.
  Encoder e;
  e.raw("FALTUNG\n", 8);
  e.u32(1);
  e.u32(4);
  e.u32(1);
  e.u64(784);
  e.str("dense:250000");
  e.u32(0);
  e.checksum();
  ASSERT_EQ(e.b.size(), 56u);
  write_bytes(path("huge.faltung"), e.b);
  expect_error([&] { load_model<float>(path("huge.faltung")); },
               {"cannot load '" + path("huge.faltung") + "'", "its architecture 'dense:250000' has 196250000 parameters",
                "input shape (784)", "but the file holds 0 values in 0 parameter tensors"});
  // Beyond SizeLimits: refused by the shape checks, named as the file's.
  Encoder g;
  g.raw("FALTUNG\n", 8);
  g.u32(1);
  g.u32(4);
  g.u32(1);
  g.u64(std::uint64_t(1) << 40);
  g.str("dense:4");
  g.u32(0);
  g.checksum();
  write_bytes(path("input.faltung"), g.b);
  expect_error([&] { load_model<float>(path("input.faltung")); },
               {"cannot load '" + path("input.faltung") + "'", "does not build for input shape (1099511627776)",
                "SizeLimits"});
}

namespace {

/// A model whose file says whatever the test wants, written by save_model itself (so its
/// structure and checksum are valid): the lies are in what the fields say.
struct LyingModel {
  std::string spec_ = "flatten,dense:3";
  Shape input_{4};
  std::vector<std::string> layers_ = {"flatten", "dense"};
  std::vector<NamedParameter<float>> params_;
  InferenceConfig inference_;
  std::vector<Parameter<float>> storage_;

  std::string spec() const { return spec_; }
  const Shape& input_shape() const { return input_; }
  bool built() const { return true; }
  std::vector<Parameter<float>*> parameters() {
    std::vector<Parameter<float>*> p;
    for (auto& n : params_) p.push_back(n.parameter);
    return p;
  }
  std::vector<std::string> layer_names() const { return layers_; }
  std::vector<NamedParameter<float>> named_parameters() { return params_; }
  InferenceConfig inference_config() const { return inference_; }

  /// Tensors with these shapes, all in layer "dense".
  void tensors(const std::vector<std::pair<std::string, Shape>>& shapes) {
    storage_.clear();
    storage_.reserve(shapes.size());
    for (const auto& s : shapes) storage_.emplace_back(s.first, s.second);
    params_.clear();
    for (auto& p : storage_) params_.push_back({"dense", &p});
  }
};

}  // namespace

TEST_F(ModelFileTest, FilesThatLieAboutTheirTensors) {
  LyingModel m;
  const std::string p = path("lie.faltung");
  m.tensors({{"kernel", Shape{4, 3}}, {"bias", Shape{3}}});
  save_model(m, p);
  EXPECT_NO_THROW(load_model<float>(p));  // the truth, for contrast

  m.tensors({{"kernel", Shape{4, 3}}});  // a tensor too few
  save_model(m, p);
  expect_error([&] { load_model<float>(p); },
               {"cannot load '" + p + "'", "has 15 parameters for input shape (4), but the file holds 12 values in 1"});
  m.tensors({{"kernel", Shape{4, 3}}, {"bias", Shape{3}}, {"extra", Shape{1}}});  // one too many
  save_model(m, p);
  expect_error([&] { load_model<float>(p); }, {"has 15 parameters", "the file holds 16 values in 3 parameter tensors"});
  m.tensors({{"kernel", Shape{3, 4}}, {"bias", Shape{3}}});  // the right count, a wrong shape
  save_model(m, p);
  expect_error([&] { load_model<float>(p); },
               {"parameter 0 is 'kernel' of shape (3, 4) in the file but 'kernel' of shape (4, 3) in the model"});
  m.tensors({{"kernel", Shape{4, 3}}, {"b", Shape{1}}, {"b", Shape{2}}});  // the right total, split
  save_model(m, p);
  expect_error([&] { load_model<float>(p); }, {"the file has 3 parameter tensors, the model 2"});
  m.tensors({{"kernel", Shape{4, 3}}, {"bias", Shape{3}}});

  m.layers_ = {"flatten"};  // names for fewer layers than the architecture has
  m.params_[0].layer = m.params_[1].layer = "flatten";
  save_model(m, p);
  expect_error([&] { load_model<float>(p); }, {"corrupt", "names 1 layers for the 2 of its architecture"});
  m.layers_ = {"flatten", "dense"};
  m.params_[0].layer = "nowhere";  // a tensor of no layer
  save_model(m, p);
  expect_error([&] { load_model<float>(p); }, {"corrupt", "parameter 0 ('kernel') belongs to layer 'nowhere'"});
  m.params_[0].layer = m.params_[1].layer = "dense";

  m.inference_.class_names = {"a", "b"};  // two names for three outputs
  save_model(m, p);
  expect_error([&] { load_model<float>(p); }, {"cannot load '" + p + "'", "2 class names for 3 outputs"});
  m.inference_.class_names = {"a", "", "c"};
  save_model(m, p);
  expect_error([&] { load_model<float>(p); }, {"cannot load '" + p + "'", "class name 1 is empty"});
  m.inference_.class_names = {};

  m.spec_ = "flatten,dense:3,bogus";
  save_model(m, p);
  expect_error([&] { load_model<float>(p); }, {"cannot load '" + p + "': its architecture: layer 3 'bogus'"});
  m.spec_ = "conv:3:3";  // does not take a (4) input
  m.layers_ = {"conv2d"};
  m.params_[0].layer = m.params_[1].layer = "conv2d";
  save_model(m, p);
  expect_error([&] { load_model<float>(p); }, {"does not build for input shape (4)"});
}

TEST_F(ModelFileTest, CorruptInferenceFieldsWithAValidChecksum) {
  Sequential<float> net = make_sequential<float>("dense:2", {3});
  net.compile(SparseCrossEntropy{}, Adam<float>());
  net.save(path("m.faltung"));
  Bytes b = read_bytes(path("m.faltung"));
  b.resize(b.size() - 8);  // without its checksum
  const auto find = [&](const std::string& s) {
    return std::size_t(std::search(b.begin(), b.end(), s.begin(), s.end()) - b.begin());
  };
  const auto with_checksum = [](Bytes body) {
    Encoder e;
    e.b = std::move(body);
    e.checksum();
    return e.b;
  };
  {  // an activation faltung does not know
    Bytes c = b;
    c[find("softmax")] = 'S';
    write_bytes(path("act.faltung"), with_checksum(c));
    expect_error([&] { load_model<float>(path("act.faltung")); },
                 {"cannot load '" + path("act.faltung") + "': the file is corrupt: unknown output activation 'Softmax'"});
  }
  // A version 2 file of dense:2 on (3) up to its output activation.
  const auto up_to_activation = [](const std::string& activation, double alpha) {
    Encoder e;
    e.raw("FALTUNG\n", 8);
    e.u32(2);
    e.u32(4);
    e.u32(1);
    e.u64(3);
    e.str("dense:2");
    e.u32(0);  // layer names
    e.str("");  // loss
    e.str(activation);
    e.f64(alpha);
    return e;
  };
  {  // a leaky_relu output with a negative slope
    Encoder e = up_to_activation("leaky_relu", -1);
    e.u32(0);
    e.u32(0);
    e.checksum();
    write_bytes(path("leaky.faltung"), e.b);
    expect_error([&] { read_model_file(path("leaky.faltung")); }, {"corrupt", "leaky_relu has slope -1"});
  }
  {  // four billion class names
    Encoder e = up_to_activation("linear", 0.3);
    e.u32(0xffffffffu);
    e.checksum();
    write_bytes(path("names.faltung"), e.b);
    expect_error([&] { read_model_file(path("names.faltung")); },
                 {"truncated", "claims 4294967295 class names"});
    e.b[16 + 12 + 11] = 0xff;  // and as many layer names
    write_bytes(path("layers.faltung"), with_checksum(Bytes(e.b.begin(), e.b.end() - 8)));
    expect_error([&] { read_model_file(path("layers.faltung")); }, {"truncated", "layer names"});
  }
}
