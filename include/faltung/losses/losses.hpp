#pragma once
// Every loss faltung offers. The contract they share is described in losses/loss.hpp.

#include "faltung/losses/loss.hpp"
#include "faltung/losses/binary_cross_entropy.hpp"
#include "faltung/losses/cross_entropy.hpp"
#include "faltung/losses/mean_squared_error.hpp"
