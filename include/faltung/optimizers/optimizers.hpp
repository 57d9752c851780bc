#pragma once
// Every optimizer faltung offers, and the learning-rate schedules. The contract they share is
// described in optimizers/optimizer.hpp.

#include "faltung/optimizers/optimizer.hpp"
#include "faltung/optimizers/adagrad.hpp"
#include "faltung/optimizers/adam.hpp"
#include "faltung/optimizers/rmsprop.hpp"
#include "faltung/optimizers/schedules.hpp"
#include "faltung/optimizers/sgd.hpp"
