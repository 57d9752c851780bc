// Sizes (sizes.hpp): every product of sizes is overflow-checked, and a size beyond SizeLimits
// is refused with a clear faltung::Error before anything is allocated, wherever it arises: a
// shape, a tensor, a layer's output or parameters or workspace, a whole model, an architecture
// string, a data set's dimensions.

#include <gtest/gtest.h>

#include <faltung/data/fashion_mnist.hpp>
#include <faltung/data/make_classification.hpp>
#include <faltung/io/load_model.hpp>
#include <faltung/model/architecture.hpp>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "test_support.hpp"

// The largest single allocation since the last reset: how the tests see that a refused size
// was refused before anything was allocated for it.
namespace {
std::atomic<std::size_t> g_largest_allocation{0};
// Called through a pointer the compiler cannot see through: GCC 12 otherwise inlines the
// replaced operator delete into callers and warns (-Wmismatched-new-delete).
void (*volatile g_free)(void*) = std::free;

void note_allocation(std::size_t n) {
  std::size_t prev = g_largest_allocation.load(std::memory_order_relaxed);
  while (n > prev && !g_largest_allocation.compare_exchange_weak(prev, n, std::memory_order_relaxed)) {
  }
}
}  // namespace

void* operator new(std::size_t n) {
  note_allocation(n);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
  note_allocation(n);
  const std::size_t align = std::size_t(a);
  if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { g_free(p); }
void operator delete(void* p, std::size_t) noexcept { g_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { g_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { g_free(p); }

using namespace faltung;
using faltung::test::contains;
using faltung::test::error_of;

namespace {

constexpr std::size_t kOneMiB = std::size_t(1) << 20;

/// SizeLimits lowered (or raised) for one test, restored after it.
class ScopedSizeLimits {
 public:
  explicit ScopedSizeLimits(const SizeLimits& limits) : saved_(size_limits()) { set_size_limits(limits); }
  ~ScopedSizeLimits() { set_size_limits(saved_); }
  ScopedSizeLimits(const ScopedSizeLimits&) = delete;
  ScopedSizeLimits& operator=(const ScopedSizeLimits&) = delete;

 private:
  SizeLimits saved_;
};

/// The message of the error f throws, checked to contain every part, and with the largest
/// allocation made on the way checked to stay under 1 MiB: the size was refused, not tried.
template <class F>
std::string refused(F&& f, std::initializer_list<const char*> parts) {
  g_largest_allocation = 0;
  const std::string msg = error_of(f);
  EXPECT_LT(g_largest_allocation.load(), kOneMiB) << msg;
  for (const char* part : parts) EXPECT_TRUE(contains(msg, part)) << "missing '" << part << "' in: " << msg;
  return msg;
}

}  // namespace

// =============================================================================================
// The helpers

TEST(CheckedArithmetic, ProductsAndSumsThatFitAreExact) {
  EXPECT_EQ(checked_mul(std::size_t(1) << 31, std::size_t(1) << 32, "x"), std::size_t(1) << 63);
  EXPECT_EQ(checked_mul(0, SIZE_MAX, "x"), 0u);
  EXPECT_EQ(checked_mul(SIZE_MAX, 1, "x"), SIZE_MAX);
  EXPECT_EQ(checked_add(SIZE_MAX - 1, 1, "x"), SIZE_MAX);
  const std::size_t dims[] = {2, 3, 4};
  EXPECT_EQ(checked_product(dims, dims + 3, "x"), 24u);
  EXPECT_EQ(checked_product(dims, dims, "x"), 1u);
  // A zero makes the product 0 even where the other factors alone would overflow.
  const std::size_t with_zero[] = {SIZE_MAX, SIZE_MAX, 0};
  EXPECT_EQ(checked_product(with_zero, with_zero + 3, "x"), 0u);
}

TEST(CheckedArithmetic, OverflowIsAnErrorNamingWhatAndTheOperands) {
  EXPECT_EQ(error_of([] { checked_mul(std::size_t(1) << 32, std::size_t(1) << 32, "the ", "thing"); }),
            "the thing: 4294967296 * 4294967296 overflows 64-bit std::size_t");
  EXPECT_EQ(error_of([] { checked_add(SIZE_MAX, 1, "a sum"); }),
            "a sum: 18446744073709551615 + 1 overflows 64-bit std::size_t");
  const std::size_t dims[] = {std::size_t(1) << 40, std::size_t(1) << 40};
  EXPECT_TRUE(contains(error_of([&] { checked_product(dims, dims + 2, "dims"); }), "dims: 1099511627776 * 1099511627776 overflows"));
}

TEST(SizeLimits, DefaultsAndTheirCheck) {
  EXPECT_EQ(size_limits().max_tensor_elements, std::size_t(1) << 32);
  EXPECT_EQ(size_limits().max_parameters, std::size_t(1) << 31);
  EXPECT_NO_THROW(check_tensor_elements(std::size_t(1) << 32, "x"));
  EXPECT_EQ(error_of([] { check_tensor_elements((std::size_t(1) << 32) + 1, "The buffer"); }),
            "The buffer has 4294967297 elements, more than faltung's limit of 4294967296 per tensor "
            "(SizeLimits::max_tensor_elements)");
}

TEST(SizeLimits, CanBeLoweredAndAreValidated) {
  {
    ScopedSizeLimits small(SizeLimits().tensor_elements(1000).parameters(100));
    EXPECT_EQ(size_limits().max_tensor_elements, 1000u);
    EXPECT_NO_THROW(Tensor<float>(Shape{10, 100}));
    refused([] { Tensor<float>(Shape{10, 101}); }, {"Tensor of shape (10, 101) has 1010 elements", "limit of 1000"});
  }
  EXPECT_EQ(size_limits().max_tensor_elements, std::size_t(1) << 32);  // restored
  EXPECT_TRUE(contains(error_of([] { set_size_limits(SizeLimits().tensor_elements(0)); }), "must be positive"));
  EXPECT_TRUE(contains(error_of([] { set_size_limits(SizeLimits().parameters(std::size_t(1) << 49)); }),
                       "at most 2^48"));
  EXPECT_EQ(size_limits().max_parameters, std::size_t(1) << 31);  // a refused setting changes nothing
}

// =============================================================================================
// Shapes and tensors

TEST(Sizes, ShapeNumelOverflowIsAnError) {
  const std::size_t big = std::size_t(1) << 32;
  const std::string msg = error_of([&] { (void)Shape({big, big, big}).numel(); });
  EXPECT_TRUE(contains(msg, "Shape (4294967296, 4294967296, 4294967296): the number of elements")) << msg;
  EXPECT_TRUE(contains(msg, "4294967296 * 4294967296 overflows 64-bit std::size_t")) << msg;
  EXPECT_EQ((Shape{big, big, 0}).numel(), 0u);  // empty, not an overflow
}

TEST(Sizes, AHugeTensorIsRefusedNotAllocatedTooSmall) {
  // 2^62 elements fit in size_t, but 2^62 floats are 2^64 bytes: once a 0-byte buffer.
  const std::size_t big = std::size_t(1) << 31;
  refused([&] { Tensor<float>(Shape{big, big}); },
          {"Tensor of shape (2147483648, 2147483648) has 4611686018427387904 elements, more than faltung's limit of "
           "4294967296 per tensor (SizeLimits::max_tensor_elements)"});
  Tensor<float> t(Shape{2, 3});
  refused([&] { t.resize(Shape{big, big}); }, {"Tensor of shape (2147483648, 2147483648)"});
  EXPECT_EQ(t.shape(), (Shape{2, 3}));  // unchanged by the refused resize
  EXPECT_EQ(t.size(), 6u);
}

TEST(Sizes, MemoryThatIsNotThereIsAnErrorNotBadAlloc) {
  // Within a raised limit but beyond any address space: 2^48 doubles are 2 PiB.
  ScopedSizeLimits huge(SizeLimits().tensor_elements(std::size_t(1) << 48));
  const std::string msg = error_of([] { Tensor<double>(Shape{std::size_t(1) << 48}); });
  EXPECT_TRUE(contains(msg, "Tensor of shape (281474976710656): out of memory allocating 2251799813685248 bytes"))
      << msg;
}

TEST(Sizes, AsMatrixRowsTimesColsCannotWrapToTheSize) {
  Tensor<float> t(Shape{4});
  // 2^63 * 2 wraps to 0, not 4; 2^62 * 4 wraps to 0 too: neither may pass as a view of t.
  const std::string msg = error_of([&] { t.as_matrix(std::size_t(1) << 62, 4); });
  EXPECT_TRUE(contains(msg, "Tensor::as_matrix: 4611686018427387904 * 4 overflows")) << msg;
}

// =============================================================================================
// Layers

TEST(Sizes, ConvolutionPaddingAndStrideOverflowAreErrors) {
  const std::size_t huge = std::size_t(1) << 63;
  const std::string pad = error_of([&] { Conv2D<float>(Conv2DOptions(1, 1).padding(huge, 0)).output_shape({1, 4, 4}); });
  EXPECT_TRUE(contains(pad, "Conv2D height: padding: 2 * 9223372036854775808 overflows")) << pad;
  const std::string stride =
      error_of([] { Conv2D<float>(Conv2DOptions(1, 1).padding(Padding::Same).stride(SIZE_MAX)).output_shape({1, 4, 4}); });
  EXPECT_TRUE(contains(stride, "Conv2D height: input plus stride: 4 + 18446744073709551614 overflows")) << stride;
}

TEST(Sizes, ConvolutionWorkspaceBeyondTheLimitIsRefusedAtBuild) {
  // A 999 x 999 kernel padded by 1000 on a 999 x 999 image: 2001 x 2001 outputs, each a dot
  // product over 998001 taps. Output and kernel are small; the column matrix is 4e12 floats.
  const std::string msg = refused([] { make_sequential<float>("conv:1:999:p1000,flatten,dense:1", {1, 999, 999}); },
                                  {"layer 0 'conv2d' (Conv2D)", "Conv2D: the column matrix", "SizeLimits::max_tensor_elements"});
  // The kernels check the same on entry, for callers that skip the layer.
  kernels::Conv2DParams p;
  p.batch = 1;
  p.in_channels = 1;
  p.out_channels = 1;
  p.h = window_axis(999, 999, 1, Padding::Explicit, 1000, "h");
  p.w = p.h;
  Tensor<float> workspace;
  const std::string direct = refused(
      [&] {
        kernels::conv2d_forward<float>(p, nullptr, nullptr, nullptr, nullptr, workspace, false);
      },
      {"conv2d_forward: the column matrix"});
  EXPECT_TRUE(workspace.empty());
}

TEST(Sizes, ConvolutionOutputBeyondTheLimitIsRefusedBeforeAllocating) {
  // The example: padding 268435442 on 28 x 28 makes 536870912 x 536870912 outputs per
  // filter, 2^62 per sample, and summary() used to count 4.6e18 parameters for the Dense.
  refused([] { make_sequential<float>("conv:16:1:p268435442,flatten,dense:1", {1, 28, 28}); },
          {"Sequential::build: layer 0 'conv2d' (Conv2D) cannot take the output of the input of shape (1, 28, 28)",
           "one sample's output (filters x out height x out width) has 4611686018427387904 elements",
           "more than faltung's limit of 4294967296 per tensor (SizeLimits::max_tensor_elements)"});
}

TEST(Sizes, DenseParameterOverflowIsAnError) {
  // 2^32 inputs fit one tensor; 2^32 x 2^32 weights do not fit in size_t.
  const std::size_t n = std::size_t(1) << 32;
  Sequential<float> net;
  net.add<Dense>(n);
  refused([&] { net.build({n}); },
          {"layer 0 'dense' (Dense)", "Dense: the kernel's size (inputs x units): 4294967296 * 4294967296 overflows"});
  EXPECT_FALSE(net.layer(0).built());
}

TEST(Sizes, MaxPoolPlanesBeyondItsInt32ArgmaxAreRefused) {
  const std::string msg = error_of([] { MaxPool2D<float>(2).output_shape({1, 65536, 32769}); });
  EXPECT_TRUE(contains(msg, "MaxPool2D: an input plane of 65536 x 32769 = 2147549184 pixels is more than 2147483647"))
      << msg;
  EXPECT_NO_THROW(MaxPool2D<float>(2).output_shape({1, 65536, 32767}));
}

// =============================================================================================
// Models and architectures

TEST(Sizes, ModelParametersBeyondTheLimitAreRefusedBeforeAnyLayerIsBuilt) {
  // Each layer's weights fit one tensor; together they pass max_parameters.
  const std::string msg =
      refused([] { make_sequential<float>("dense:40000,dense:40000,dense:40000", {40000}); },
              {"Sequential::build: the model has 4800120000 parameters for input shape (40000), more than faltung's "
               "limit of 2147483648 (SizeLimits::max_parameters)"});
  Sequential<float> net;
  add_layers(net, "dense:40000,dense:40000,dense:40000");
  EXPECT_THROW(net.build({40000}), Error);
  for (std::size_t i = 0; i < net.size(); ++i) EXPECT_FALSE(net.layer(i).built()) << i;
  {
    ScopedSizeLimits small(SizeLimits().parameters(100));
    refused([] { make_sequential<float>("dense:10,dense:10", {4}); },
            {"the model has 160 parameters", "limit of 100"});
    EXPECT_NO_THROW(make_sequential<float>("dense:10,dense:1", {4}));  // 50 + 11
  }
}

TEST(Sizes, ParameterCountForMatchesWhatBuildAllocates) {
  for (const char* spec : {"conv:8:3:same:relu,pool:2,flatten,dense:10", "conv:4:3x5:nobias,flatten,dense:3:nobias",
                           "conv:2:1:s2,drop:0.5,flatten,dense:7,relu,dense:1"}) {
    Sequential<float> planned;
    add_layers(planned, spec);
    Sequential<float> built = make_sequential<float>(spec, {3, 9, 9});
    Shape shape{3, 9, 9};
    for (std::size_t i = 0; i < built.size(); ++i) {
      EXPECT_EQ(planned.layer(i).parameter_count_for(shape), built.layer(i).parameter_count()) << spec << " " << i;
      shape = built.layer(i).output_shape();
    }
  }
}

TEST(Sizes, AnInputShapeBeyondTheLimitIsRefused) {
  refused([] { make_sequential<float>("flatten", {65536, 65536, 2}); },
          {"Sequential::build: the input shape (65536, 65536, 2) has 8589934592 elements"});
}

// =============================================================================================
// Data

TEST(Sizes, ImageDatasetFieldsThatOverflowAreAnError) {
  ImageDataset d;
  d.count = 2;
  d.height = std::size_t(1) << 40;
  d.width = std::size_t(1) << 40;
  d.labels = {0, 1};
  const std::string msg = error_of([&] { d.images<float>(); });
  EXPECT_TRUE(contains(msg, "ImageDataset: a sample's size: 1099511627776 * 1099511627776 overflows")) << msg;
}

TEST(Sizes, IdxArrayNumelIsChecked) {
  IdxArray a;
  a.dims = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
  EXPECT_TRUE(contains(error_of([&] { (void)a.numel(); }), "IdxArray: the number of elements"));
  a.dims = {3, 0, 0xFFFFFFFFu};
  EXPECT_EQ(a.numel(), 0u);
}

TEST(Sizes, MakeClassificationBeyondTheLimitIsRefused) {
  refused([] { make_classification<float>(MakeClassificationOptions().samples(100000).features(100000)); },
          {"make_classification: 100000 samples x 100000 features has 10000000000 elements"});
}

namespace {

/// A model that is only an architecture, an input shape and no weights: what a short file
/// claiming a huge network says.
struct ClaimedModel {
  std::string spec_;
  Shape input_;
  std::string spec() const { return spec_; }
  const Shape& input_shape() const { return input_; }
  bool built() const { return true; }
  std::vector<Parameter<float>*> parameters() { return {}; }
};

}  // namespace

// The file: a few dozen bytes with a valid checksum claiming dense:250000 on 784 inputs
// made load_model build and initialise 196 million parameters (785 MB, seconds) before it
// compared them with the file's tensors. Now nothing is built for a claim the bytes do not back.
TEST(Sizes, AModelFileClaimingAHugeNetworkAllocatesNothing) {
  test::TempDir tmp;
  const std::string path = tmp.path("huge.faltung");
  ClaimedModel claim{"dense:250000", Shape{784}};
  save_model(claim, path);
  refused([&] { load_model<float>(path); },
          {"its architecture 'dense:250000' has 196250000 parameters for input shape (784)",
           "the file holds 0 values in 0 parameter tensors"});
  // Beyond the parameter limit: refused by the same checks as build's, naming the file.
  ClaimedModel beyond{"dense:100000000", Shape{100000}};
  save_model(beyond, path);
  refused([&] { load_model<double>(path); },
          {"cannot load '", "does not build for input shape (100000)", "SizeLimits::max_parameters"});
}
