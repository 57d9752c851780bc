# Finds stb_image's header and compiled library, and defines the imported target faltung::stb
# for them. faltung's own CMakeLists.txt and its installed package config both include this file,
# so a consumer's find_package(faltung COMPONENTS image) looks for stb the same way faltung did.
#
# On Debian (libstb-dev) the headers are in /usr/include/stb and libstb.so holds the compiled
# code of stb_image and stb_image_write, so no program has to define STB_IMAGE_IMPLEMENTATION.
# pkg-config's `stb` module is used as a hint when present; find_path / find_library do the rest,
# so FALTUNG_STB_INCLUDE_DIR and FALTUNG_STB_LIBRARY can also be set by hand (another layout, a
# library of your own built from stb_image.h).
#
# Sets faltung_STB_FOUND. Set FALTUNG_STB_IMPORTED_GLOBAL before including to make the target
# GLOBAL (faltung's own build, so that a project that add_subdirectory()s faltung sees it too).
if(TARGET faltung::stb)
  set(faltung_STB_FOUND TRUE)
  return()
endif()

find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(PC_FALTUNG_STB QUIET stb)
endif()
find_path(FALTUNG_STB_INCLUDE_DIR stb_image.h
  HINTS ${PC_FALTUNG_STB_INCLUDE_DIRS}
  PATH_SUFFIXES stb)
find_library(FALTUNG_STB_LIBRARY NAMES stb
  HINTS ${PC_FALTUNG_STB_LIBRARY_DIRS})
mark_as_advanced(FALTUNG_STB_INCLUDE_DIR FALTUNG_STB_LIBRARY)

if(FALTUNG_STB_INCLUDE_DIR AND FALTUNG_STB_LIBRARY)
  set(faltung_STB_FOUND TRUE)
  if(FALTUNG_STB_IMPORTED_GLOBAL)
    add_library(faltung::stb UNKNOWN IMPORTED GLOBAL)
  else()
    add_library(faltung::stb UNKNOWN IMPORTED)
  endif()
  set_target_properties(faltung::stb PROPERTIES
    IMPORTED_LOCATION "${FALTUNG_STB_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${FALTUNG_STB_INCLUDE_DIR}")
else()
  set(faltung_STB_FOUND FALSE)
endif()
