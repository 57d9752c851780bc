#pragma once
// faltung's version, for code that must adapt to it and for the model file header.
#define FALTUNG_VERSION_MAJOR 0
#define FALTUNG_VERSION_MINOR 1
#define FALTUNG_VERSION_PATCH 0
#define FALTUNG_VERSION_STRING "0.1.0"
