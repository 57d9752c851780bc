#pragma once
// The umbrella header: everything faltung offers, in one include.
//   #include <faltung/faltung.hpp>

#include "faltung/config.hpp"
#include "faltung/version.hpp"
#include "faltung/threading.hpp"
#include "faltung/sizes.hpp"
#include "faltung/tensor.hpp"
#include "faltung/random.hpp"
#include "faltung/parameter.hpp"
#include "faltung/initializers.hpp"

#include "faltung/layers/layer.hpp"
#include "faltung/layers/activation.hpp"
#include "faltung/layers/conv2d.hpp"
#include "faltung/layers/dense.hpp"
#include "faltung/layers/dropout.hpp"
#include "faltung/layers/flatten.hpp"
#include "faltung/layers/max_pool2d.hpp"

#include "faltung/losses/losses.hpp"
#include "faltung/optimizers/optimizers.hpp"

#include "faltung/model/callbacks.hpp"
#include "faltung/model/history.hpp"
#include "faltung/model/progress.hpp"
#include "faltung/model/sequential.hpp"
#include "faltung/model/architecture.hpp"
#include "faltung/distributed/communicator.hpp"
#include "faltung/distributed/data_parallel.hpp"  // distributed/mpi.hpp, which needs MPI: include it yourself
#include "faltung/io/atomic_file.hpp"
#include "faltung/io/model_file.hpp"
#include "faltung/io/training_state.hpp"
#include "faltung/io/load_model.hpp"
#include "faltung/model/inference_model.hpp"

#include "faltung/data/idx.hpp"
#include "faltung/data/fashion_mnist.hpp"
#include "faltung/data/image_preprocess.hpp"  // data/image.hpp, which reads files, needs stb: include it yourself
#include "faltung/data/tabular.hpp"
#include "faltung/data/csv.hpp"
#include "faltung/data/standard_scaler.hpp"
#include "faltung/data/train_test_split.hpp"
#include "faltung/data/make_classification.hpp"
#include "faltung/data/make_friedman1.hpp"

#include "faltung/testing/gradcheck.hpp"
