// The architecture language (model/architecture.hpp): round trips through every layer's
// spec(), the options each spec sets, and an error naming the bad token for each kind of bad spec.

#include <gtest/gtest.h>

#include <faltung/model/architecture.hpp>

#include <sstream>
#include <string>
#include <utility>
#include <vector>

using namespace faltung;

namespace {

const char* const lecture_network =
    "conv:128:3:same:relu,pool:2,drop:0.5,conv:64:3:same:relu,pool:2,flatten,dense:512:relu,drop:0.5,"
    "dense:256:relu,drop:0.5,dense:10";

// (what a student may type, its canonical form)
const std::vector<std::pair<std::string, std::string>> round_trips = {
    // conv: kernel, padding, stride
    {"conv:32:3", "conv:32:3"},
    {"conv:32:3x5", "conv:32:3x5"},
    {"conv:32:3x3", "conv:32:3"},
    {"conv:32:3:valid", "conv:32:3"},
    {"conv:32:3:same", "conv:32:3:same"},
    {"conv:32:3:p1", "conv:32:3:p1"},
    {"conv:32:3:p0", "conv:32:3:p0"},
    {"conv:32:3:p1x2", "conv:32:3:p1x2"},
    {"conv:32:3:p2x2", "conv:32:3:p2"},
    {"conv:32:3:s2", "conv:32:3:s2"},
    {"conv:32:3:s2x1", "conv:32:3:s2x1"},
    {"conv:32:3:s1", "conv:32:3"},
    {"conv:32:3:s1x1", "conv:32:3"},
    // conv: activations
    {"conv:8:3:relu", "conv:8:3:relu"},
    {"conv:8:3:leaky_relu", "conv:8:3:leaky_relu"},
    {"conv:8:3:leaky_relu=0.1", "conv:8:3:leaky_relu=0.1"},
    {"conv:8:3:leaky_relu=0.3", "conv:8:3:leaky_relu"},
    {"conv:8:3:leakyrelu=0.25", "conv:8:3:leaky_relu=0.25"},
    {"conv:8:3:sigmoid", "conv:8:3:sigmoid"},
    {"conv:8:3:tanh", "conv:8:3:tanh"},
    {"conv:8:3:softmax", "conv:8:3:softmax"},
    {"conv:8:3:linear", "conv:8:3"},
    // conv: bias and initialisers
    {"conv:8:3:nobias", "conv:8:3:nobias"},
    {"conv:8:3:no_bias", "conv:8:3:nobias"},
    {"conv:8:3:he_uniform", "conv:8:3:he_uniform"},
    {"conv:8:3:he_normal", "conv:8:3:he_normal"},
    {"conv:8:3:zeros", "conv:8:3:zeros"},
    {"conv:8:3:glorot_uniform", "conv:8:3"},
    {"conv:8:3:xavier_uniform", "conv:8:3"},
    // conv: every option at once, in any order, any case, with spaces and an alias
    {"conv:16:5x3:he_normal:nobias:tanh:s2:same", "conv:16:5x3:s2:same:tanh:nobias:he_normal"},
    {"conv:16:3:p1x0:s1x2:zeros:leaky_relu=0.2:nobias", "conv:16:3:s1x2:p1x0:leaky_relu=0.2:nobias:zeros"},
    {" Conv2D : 8 : 3X3 : SAME : ReLU ", "conv:8:3:same:relu"},
    {"convolution:4:1", "conv:4:1"},
    // pool
    {"pool:2", "pool:2"},
    {"maxpool:2", "pool:2"},
    {"max_pool2d:2", "pool:2"},
    {"pool:2x3", "pool:2x3"},
    {"pool:2:s2", "pool:2"},
    {"pool:3:s2", "pool:3:s2"},
    {"pool:2:s1x2", "pool:2:s1x2"},
    {"pool:2x3:s2x3", "pool:2x3"},
    {"pool:2:same", "pool:2:same"},
    {"pool:2:valid", "pool:2"},
    {"max_pooling2d:2:same:s1", "pool:2:s1:same"},
    // drop
    {"drop:0.5", "drop:0.5"},
    {"dropout:0.25", "drop:0.25"},
    {"drop:0", "drop:0"},
    {"drop:.5", "drop:0.5"},
    {"drop:5e-1", "drop:0.5"},
    {"drop:0.999", "drop:0.999"},
    // flatten, dense
    {"flatten", "flatten"},
    {"FLATTEN", "flatten"},
    {"dense:10", "dense:10"},
    {"dense:10:softmax", "dense:10:softmax"},
    {"dense:10:linear", "dense:10"},
    {"fc:128:relu:nobias:he_uniform", "dense:128:relu:nobias:he_uniform"},
    {"dense:64:he_normal:leaky_relu=0.01", "dense:64:leaky_relu=0.01:he_normal"},
    // bare activation layers
    {"relu", "relu"},
    {"leaky_relu", "leaky_relu"},
    {"leaky_relu=0.2", "leaky_relu=0.2"},
    {"LeakyReLU=0.2", "leaky_relu=0.2"},
    {"sigmoid", "sigmoid"},
    {"tanh", "tanh"},
    {"softmax", "softmax"},
    {"linear", "linear"},
    // whole networks
    {lecture_network, lecture_network},
    {"conv2d:32:3:same, relu ,maxpool:2 , dropout:0.25,flatten,fc:128,relu,dense:10",
     "conv:32:3:same,relu,pool:2,drop:0.25,flatten,dense:128,relu,dense:10"},
};

/// Expects add_layers(spec) to throw a faltung::Error containing each of `parts`.
void expect_error(const std::string& spec, const std::vector<std::string>& parts) {
  SCOPED_TRACE("spec: \"" + spec + "\"");
  Sequential<float> net;
  try {
    add_layers(net, spec);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const std::string& p : parts)
      EXPECT_NE(what.find(p), std::string::npos) << "missing \"" << p << "\" in: " << what;
  }
  EXPECT_EQ(net.size(), 0u) << "a bad spec must add no layer";
}

}  // namespace

TEST(Architecture, RoundTripsToTheCanonicalForm) {
  for (const auto& [typed, canonical] : round_trips) {
    SCOPED_TRACE("spec: \"" + typed + "\"");
    EXPECT_EQ(canonical_spec(typed), canonical);
    EXPECT_EQ(canonical_spec(canonical), canonical) << "the canonical form must be a fixed point";
    Sequential<double> net;
    add_layers(net, typed);
    EXPECT_EQ(net.spec(), canonical);
  }
}

TEST(Architecture, AddLayersAppends) {
  Sequential<float> net;
  add_layers(net, "conv:8:3:relu");
  add_layers(net, "pool:2, flatten");
  net.add<Dense>(10);
  EXPECT_EQ(net.size(), 4u);
  EXPECT_EQ(net.spec(), "conv:8:3:relu,pool:2,flatten,dense:10");
  EXPECT_EQ(net.layer(0).name(), "conv2d");
  EXPECT_EQ(net.layer(1).name(), "max_pooling2d");
}

TEST(Architecture, ConvOptions) {
  Sequential<float> net;
  add_layers(net, "conv:16:5x3:he_normal:nobias:leaky_relu=0.2:s2x1:p1x2,conv:4:3:same,conv:4:3:valid:tanh");
  const auto& a = dynamic_cast<Conv2D<float>&>(net.layer(0)).options();
  EXPECT_EQ(a.filters_, 16u);
  EXPECT_EQ(a.kernel_h_, 5u);
  EXPECT_EQ(a.kernel_w_, 3u);
  EXPECT_EQ(a.stride_h_, 2u);
  EXPECT_EQ(a.stride_w_, 1u);
  EXPECT_EQ(a.padding_, Padding::Explicit);
  EXPECT_EQ(a.pad_h_, 1u);
  EXPECT_EQ(a.pad_w_, 2u);
  EXPECT_EQ(a.activation_.kind, ActivationKind::LeakyReLU);
  EXPECT_DOUBLE_EQ(a.activation_.alpha, 0.2);
  EXPECT_FALSE(a.use_bias_);
  EXPECT_EQ(a.kernel_initializer_, Initializer::HeNormal);

  const auto& b = dynamic_cast<Conv2D<float>&>(net.layer(1)).options();
  EXPECT_EQ(b.padding_, Padding::Same);
  EXPECT_EQ(b.stride_h_, 1u);
  EXPECT_TRUE(b.activation_.is_linear());
  EXPECT_TRUE(b.use_bias_);
  EXPECT_EQ(b.kernel_initializer_, Initializer::GlorotUniform);

  const auto& c = dynamic_cast<Conv2D<float>&>(net.layer(2)).options();
  EXPECT_EQ(c.padding_, Padding::Valid);
  EXPECT_EQ(c.activation_.kind, ActivationKind::Tanh);
}

TEST(Architecture, PoolDropDenseAndActivationOptions) {
  Sequential<float> net;
  add_layers(net, "pool:3x2:s1x2:same,pool:2,drop:0.3,dense:7:sigmoid:nobias:zeros,dense:3,leaky_relu=0.05,softmax");
  const auto& p = dynamic_cast<MaxPool2D<float>&>(net.layer(0)).options();
  EXPECT_EQ(p.pool_h_, 3u);
  EXPECT_EQ(p.pool_w_, 2u);
  EXPECT_EQ(p.stride_h(), 1u);
  EXPECT_EQ(p.stride_w(), 2u);
  EXPECT_EQ(p.padding_, Padding::Same);
  const auto& q = dynamic_cast<MaxPool2D<float>&>(net.layer(1)).options();
  EXPECT_EQ(q.stride_h(), 2u);
  EXPECT_EQ(q.padding_, Padding::Valid);
  EXPECT_DOUBLE_EQ(dynamic_cast<Dropout<float>&>(net.layer(2)).rate(), 0.3);
  const auto& d = dynamic_cast<Dense<float>&>(net.layer(3)).options();
  EXPECT_EQ(d.units_, 7u);
  EXPECT_EQ(d.activation_.kind, ActivationKind::Sigmoid);
  EXPECT_FALSE(d.use_bias_);
  EXPECT_EQ(d.kernel_initializer_, Initializer::Zeros);
  const auto& e = dynamic_cast<Dense<float>&>(net.layer(4)).options();
  EXPECT_TRUE(e.use_bias_);
  EXPECT_TRUE(e.activation_.is_linear());
  const auto& f = dynamic_cast<ActivationLayer<float>&>(net.layer(5)).activation();
  EXPECT_EQ(f.kind, ActivationKind::LeakyReLU);
  EXPECT_DOUBLE_EQ(f.alpha, 0.05);
  EXPECT_EQ(dynamic_cast<ActivationLayer<float>&>(net.layer(6)).activation().kind, ActivationKind::Softmax);
  EXPECT_EQ(net.layer(6).type(), "Softmax");
}

TEST(Architecture, LectureNetworkHasTheNotebooksParameterCount) {
  Sequential<float> net = make_sequential<float>(lecture_network, {1, 28, 28});
  EXPECT_TRUE(net.built());
  EXPECT_EQ(net.parameter_count(), 1815114u);
  EXPECT_EQ(net.output_shape(), (Shape{10}));
  std::ostringstream os;
  net.summary(os);
  EXPECT_NE(os.str().find("Total params: 1,815,114"), std::string::npos) << os.str();
  // conv 1*9*128+128, conv 128*9*64+64, dense 3136*512+512, 512*256+256, 256*10+10
  EXPECT_EQ(net.layer(0).parameter_count(), 1280u);
  EXPECT_EQ(net.layer(3).parameter_count(), 73792u);
  EXPECT_EQ(net.layer(6).parameter_count(), 1606144u);
  EXPECT_EQ(net.layer(8).parameter_count(), 131328u);
  EXPECT_EQ(net.layer(10).parameter_count(), 2570u);
}

TEST(Architecture, MakeSequentialIsSeeded) {
  auto a = make_sequential<float>("flatten,dense:8:relu,dense:3", {2, 3}, 7);
  auto b = make_sequential<float>("flatten,dense:8:relu,dense:3", {2, 3}, 7);
  auto c = make_sequential<float>("flatten,dense:8:relu,dense:3", {2, 3}, 8);
  EXPECT_EQ(a.seed(), 7u);
  const auto pa = a.parameters(), pb = b.parameters(), pc = c.parameters();
  ASSERT_EQ(pa.size(), 4u);
  for (std::size_t i = 0; i < pa.size(); ++i)
    for (std::size_t j = 0; j < pa[i]->value.size(); ++j) EXPECT_EQ(pa[i]->value[j], pb[i]->value[j]);
  bool differs = false;
  for (std::size_t j = 0; j < pa[0]->value.size(); ++j) differs |= pa[0]->value[j] != pc[0]->value[j];
  EXPECT_TRUE(differs);
}

TEST(Architecture, ShapeErrorsComeFromBuild) {
  // A Dense on an image: the parser accepts it, build names the layers.
  EXPECT_THROW(make_sequential<float>("conv:4:3,dense:10", {1, 8, 8}), Error);
  EXPECT_THROW(make_sequential<float>("conv:4:9", {1, 8, 8}), Error);
  EXPECT_NO_THROW(make_sequential<float>("conv:4:9:same", {1, 8, 8}));
}

TEST(Architecture, ErrorsNameTheLayerTheTokenAndTheExpectedForm) {
  expect_error("conv:32:3,pool:2,conv:64:x",
               {"--arch: layer 3 'conv:64:x': kernel size 'x' is not a number",
                "(expected conv:FILTERS:KERNEL[:options])"});
  expect_error("conv:32:3x", {"layer 1 'conv:32:3x': kernel size '3x' is not a number"});
  expect_error("conv:32:0", {"layer 1", "kernel size '0' must be positive"});
  expect_error("conv:0:3", {"layer 1 'conv:0:3': filters '0' must be positive", "conv:FILTERS:KERNEL"});
  expect_error("conv:-1:3", {"filters '-1' is not a whole number"});
  expect_error("conv:32", {"layer 1 'conv:32': missing the kernel size"});
  expect_error("conv", {"layer 1 'conv': missing the number of filters"});
  expect_error("conv:32:3:bogus", {"layer 1 'conv:32:3:bogus': unknown option 'bogus'", "conv options: same, valid"});
  expect_error("conv:32:3:rleu", {"unknown option 'rleu'; did you mean 'relu'?"});
  expect_error("conv:32:3:same:valid", {"duplicate padding option 'valid' (already given as 'same')"});
  expect_error("conv:32:3:p1:same", {"duplicate padding option 'same' (already given as 'p1')"});
  expect_error("conv:32:3:relu:tanh", {"duplicate activation option 'tanh' (already given as 'relu')"});
  expect_error("conv:32:3:s2:s1", {"duplicate stride option 's1'"});
  expect_error("conv:32:3:nobias:nobias", {"duplicate bias option"});
  expect_error("conv:32:3:zeros:he_normal", {"duplicate initialiser option 'he_normal'"});
  expect_error("conv:32:3:s0", {"stride 's0' must be positive"});
  expect_error("conv:32:3:s2y1", {"layer 1 'conv:32:3:s2y1': stride 's2y1' is not a number"});
  expect_error("conv:32:3:p1xx", {"padding 'p1xx' is not a number"});
  expect_error("conv:8:3:relu=2", {"relu takes no parameter, got 'relu=2'"});
  expect_error("conv:8:3:leaky_relu=abc", {"leaky_relu slope 'abc' is not a number"});
  expect_error("conv:8:3:leaky_relu=0", {"leaky_relu slope '0' must be positive"});
  expect_error("conv:32:3:", {"layer 1 'conv:32:3:': trailing colon"});
  expect_error("conv:32::3", {"empty field (two colons in a row)"});
  expect_error("pool:0", {"layer 1 'pool:0': pool size '0' must be positive", "(expected pool:SIZE[:options])"});
  expect_error("pool", {"missing the pool size"});
  expect_error("pool:2:p1", {"pooling takes no explicit padding 'p1'"});
  expect_error("pool:2:relu", {"unknown option 'relu'", "pool options: sN, sHxW, same or valid"});
  expect_error("pool:2:same:same", {"duplicate padding option 'same'"});
  expect_error("drop:1.5", {"layer 1 'drop:1.5': rate '1.5' is out of range [0, 1)", "(expected drop:RATE)"});
  expect_error("drop:1", {"rate '1' is out of range"});
  expect_error("drop:-0.1", {"rate '-0.1' is out of range"});
  expect_error("drop:nan", {"rate 'nan' is not a number"});
  expect_error("drop:half", {"rate 'half' is not a number"});
  expect_error("drop", {"missing the rate"});
  expect_error("drop:0.5:0.2", {"unexpected '0.2' after the rate"});
  expect_error("dense:ten", {"units 'ten' is not a whole number", "(expected dense:UNITS[:options])"});
  expect_error("dense:0", {"units '0' must be positive"});
  expect_error("dense:10:same", {"unknown option 'same'", "dense options: an activation"});
  expect_error("dense:10:relu:softmax", {"duplicate activation option 'softmax'"});
  expect_error("flatten:1", {"flatten takes no options, got '1'"});
  expect_error("relu:2", {"relu takes no options, got '2'"});
  expect_error("leaky_relu:0.1", {"the slope is written leaky_relu=0.1"});
  expect_error("leaky_relu=-1", {"leaky_relu slope '-1' must be positive"});
  expect_error("cnv:32:3", {"layer 1 'cnv:32:3': unknown layer 'cnv'; did you mean 'conv'?"});
  expect_error("flatten,dense:10,foo", {"layer 3 'foo': unknown layer 'foo' (expected a layer: conv, pool"});
  expect_error("dropuot:0.5", {"unknown layer 'dropuot'; did you mean 'dropout'?"});
  expect_error("desne:10", {"unknown layer 'desne'; did you mean 'dense'?"});
  expect_error("conv:32:3,,dense:10", {"--arch: layer 2 is empty: two commas in a row after 'conv:32:3'"});
  expect_error("flatten,dense:10,", {"layer 3 is empty: trailing comma after 'dense:10'"});
  expect_error(",dense:10", {"layer 1 is empty: the architecture starts with a comma"});
  expect_error("", {"--arch: the architecture is empty"});
  expect_error("   ", {"the architecture is empty"});
}

TEST(Architecture, ErrorsNameTheirSource) {
  try {
    parse_architecture("flatten,dense:x", "model file 'a.faltung'");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("model file 'a.faltung': layer 2 'dense:x': units 'x'", 0), 0u) << e.what();
  }
  EXPECT_THROW(canonical_spec("dense"), Error);
  EXPECT_THROW(make_sequential<double>("dense:", {4}), Error);
}

TEST(Architecture, ParseTreeMakesLayersOfEitherScalar) {
  const std::vector<LayerSpec> layers = parse_architecture("conv:4:3:same:relu,pool:2,flatten,dense:3");
  ASSERT_EQ(layers.size(), 4u);
  EXPECT_EQ(layers[0].kind, LayerSpec::Kind::Conv2D);
  EXPECT_EQ(layers[0].text, "conv:4:3:same:relu");
  EXPECT_EQ(layers[1].kind, LayerSpec::Kind::MaxPool2D);
  EXPECT_EQ(layers[2].kind, LayerSpec::Kind::Flatten);
  EXPECT_EQ(layers[3].kind, LayerSpec::Kind::Dense);
  EXPECT_EQ(make_layer<double>(layers[0])->spec(), "conv:4:3:same:relu");
  EXPECT_EQ(make_layer<float>(layers[3])->type(), "Dense");
}
