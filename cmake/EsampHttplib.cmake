# cpp-httplib for esamp-server, its tests and its load generator: Debian's libcpp-httplib-dev
# (0.11, a shared library) through pkg-config, as PkgConfig::CPP_HTTPLIB. ESAMP_HAVE_CPP_HTTPLIB
# says whether it was found.
set(ESAMP_HAVE_CPP_HTTPLIB OFF)
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(CPP_HTTPLIB QUIET IMPORTED_TARGET cpp-httplib)
  if(CPP_HTTPLIB_FOUND)
    set(ESAMP_HAVE_CPP_HTTPLIB ON)
  endif()
endif()
if(ESAMP_HAVE_LLAMA_CPP AND NOT ESAMP_HAVE_CPP_HTTPLIB)
  message(WARNING "esamp-server is not built: cpp-httplib (libcpp-httplib-dev) was not found "
                  "through pkg-config; scripts/setup installs it")
endif()
