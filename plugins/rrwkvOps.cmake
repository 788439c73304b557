# The op folders. Every plugins/<folder>/op.cmake declares one op with rrwkv_op(): its ONNX op_type (= TensorRT plugin
# name, core/ops.py `name`), its C++ identifier stem (`cxx`: <Cxx>PluginCreator, <cxx>OrtOps(), <cxx>KernelParity())
# and its sources by role. This module reads every fragment, in folder order, and generates from them, into
# RRWKV_OPS_OUT, the lists that the registration and test sources include:
#   rrwkvOps.inc           RRWKV_OP(Name, Cxx, cxx), one line per op (X-macro; registerOrt.cc, common/ortOps.h,
#                          registerTrtStatic.cpp, registerTrtDynamic.cpp)
#   rrwkvPlugins.h         the header of every op's <Cxx>PluginCreator (registerTrt*.cpp)
#   rrwkvKernelParity.inc  RRWKV_KERNEL_PARITY(Name, cxx), one line per op with PARITY_SOURCES (tests/kernelParity.cu)
#   rrwkvOps.txt           the same facts for scripts, one "<role> <Name> <value>" line each: per op
#                          "op <Name> <folder> <Cxx>", then one line per source, role cpu|ort|cuda|plugin|
#                          plugin_header|test_shim|parity, with the path from the repository root
# plugins/CMakeLists.txt include()s it and builds from RRWKV_OPS_<ROLE>_SOURCES (all ops, in order). The scripts
# that compile without CMake (compile_check.sh, tests/plugins) run it in script mode:
#   cmake -DRRWKV_OPS_OUT=<dir> -P plugins/rrwkvOps.cmake
# Generated files are rewritten only when their content changes, so an unchanged configure rebuilds nothing.

if(CMAKE_SCRIPT_MODE_FILE)
  cmake_minimum_required(VERSION 3.24) # the policies of plugins/CMakeLists.txt
endif()

# rrwkv_op(NAME <op_type> CXX <Stem> ORT_SOURCES ... PLUGIN_SOURCES ... PLUGIN_HEADER <h>
#          [CPU_SOURCES ...] [CUDA_SOURCES ...] [TEST_SHIM_SOURCES ...] [PARITY_SOURCES ...])
# Paths are relative to the fragment's folder. Roles:
#   CPU_SOURCES        CPU kernels (no ONNX Runtime, CUDA or TensorRT): linked into the ORT library, the test shim
#                      and the parity executable
#   ORT_SOURCES        the ONNX Runtime custom op; defines rrwkv::<cxx>OrtOps()
#   CUDA_SOURCES       CUDA kernels (no TensorRT): the TensorRT libraries and the parity executable
#   PLUGIN_SOURCES     the TensorRT plugin; PLUGIN_HEADER declares rrwkv::<Cxx>PluginCreator
#   TEST_SHIM_SOURCES  extern "C" entry points of librrwkv_cpu_testshim.so (plugins/tests/cudaEmulation.h builds)
#   PARITY_SOURCES     CUDA vs CPU kernel cases; define bool rrwkv::<cxx>KernelParity(std::mt19937&)
function(rrwkv_op)
  set(_roles CPU_SOURCES ORT_SOURCES CUDA_SOURCES PLUGIN_SOURCES TEST_SHIM_SOURCES PARITY_SOURCES)
  cmake_parse_arguments(PARSE_ARGV 0 _op "" "NAME;CXX;PLUGIN_HEADER" "${_roles}")
  set(_where "${CMAKE_CURRENT_LIST_FILE}")
  if(_op_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "${_where}: rrwkv_op: unknown arguments ${_op_UNPARSED_ARGUMENTS}")
  endif()
  foreach(_required NAME CXX PLUGIN_HEADER ORT_SOURCES PLUGIN_SOURCES)
    if(NOT _op_${_required})
      message(FATAL_ERROR "${_where}: rrwkv_op: ${_required} is required")
    endif()
  endforeach()
  if(NOT _op_CXX MATCHES "^[A-Z][A-Za-z0-9]*$")
    message(FATAL_ERROR "${_where}: rrwkv_op: CXX '${_op_CXX}' must be an UpperCamel C++ identifier stem")
  endif()
  if(_op_NAME IN_LIST RRWKV_OPS)
    message(FATAL_ERROR "${_where}: rrwkv_op: op ${_op_NAME} is already declared by another folder")
  endif()

  get_filename_component(_dir "${CMAKE_CURRENT_LIST_FILE}" DIRECTORY)
  get_filename_component(_folder "${_dir}" NAME)
  string(SUBSTRING "${_op_CXX}" 0 1 _head)
  string(SUBSTRING "${_op_CXX}" 1 -1 _tail)
  string(TOLOWER "${_head}" _head)

  set(RRWKV_OPS ${RRWKV_OPS} ${_op_NAME} PARENT_SCOPE)
  set(RRWKV_OP_${_op_NAME}_FOLDER "${_folder}" PARENT_SCOPE)
  set(RRWKV_OP_${_op_NAME}_CXX "${_op_CXX}" PARENT_SCOPE)
  set(RRWKV_OP_${_op_NAME}_CXX_LOWER "${_head}${_tail}" PARENT_SCOPE)
  set(RRWKV_OP_${_op_NAME}_PLUGIN_HEADER "${_folder}/${_op_PLUGIN_HEADER}" PARENT_SCOPE)
  if(NOT EXISTS "${_dir}/${_op_PLUGIN_HEADER}")
    message(FATAL_ERROR "${_where}: rrwkv_op: PLUGIN_HEADER ${_op_PLUGIN_HEADER} does not exist")
  endif()
  foreach(_role IN LISTS _roles)
    set(_paths "")
    foreach(_source IN LISTS _op_${_role})
      if(NOT EXISTS "${_dir}/${_source}")
        message(FATAL_ERROR "${_where}: rrwkv_op: ${_role} ${_source} does not exist")
      endif()
      list(APPEND _paths "${_dir}/${_source}")
    endforeach()
    set(RRWKV_OP_${_op_NAME}_${_role} ${_paths} PARENT_SCOPE)
  endforeach()
endfunction()

if(NOT RRWKV_OPS_OUT)
  message(FATAL_ERROR "rrwkvOps.cmake: set RRWKV_OPS_OUT to the folder for the generated files")
endif()
set(_rrwkv_plugins_dir "${CMAKE_CURRENT_LIST_DIR}")
get_filename_component(_rrwkv_repo "${_rrwkv_plugins_dir}" DIRECTORY)

# A new op folder re-runs the configure step (the fragments themselves are include()d, so CMake tracks edits to
# them); script mode has no configure step to re-run.
if(CMAKE_SCRIPT_MODE_FILE)
  file(GLOB _rrwkv_fragments "${_rrwkv_plugins_dir}/*/op.cmake")
else()
  file(GLOB _rrwkv_fragments CONFIGURE_DEPENDS "${_rrwkv_plugins_dir}/*/op.cmake")
endif()
list(SORT _rrwkv_fragments)
set(RRWKV_OPS "")
foreach(_fragment IN LISTS _rrwkv_fragments)
  set(_before ${RRWKV_OPS})
  include("${_fragment}")
  list(LENGTH _before _n_before)
  list(LENGTH RRWKV_OPS _n_after)
  math(EXPR _declared "${_n_after} - ${_n_before}")
  if(NOT _declared EQUAL 1)
    message(FATAL_ERROR "${_fragment}: must call rrwkv_op() exactly once (called it ${_declared} times)")
  endif()
endforeach()
if(NOT RRWKV_OPS)
  message(FATAL_ERROR "rrwkvOps.cmake: no ${_rrwkv_plugins_dir}/*/op.cmake found")
endif()

set(_rrwkv_header "// Generated by plugins/rrwkvOps.cmake from plugins/*/op.cmake; do not edit.\n")
set(_rrwkv_ops_inc "${_rrwkv_header}")
set(_rrwkv_plugins_h "${_rrwkv_header}#ifndef RRWKV_RRWKV_PLUGINS_H\n#define RRWKV_RRWKV_PLUGINS_H\n")
set(_rrwkv_parity_inc "${_rrwkv_header}")
set(_rrwkv_manifest "")
foreach(_role CPU ORT CUDA PLUGIN TEST_SHIM PARITY)
  set(RRWKV_OPS_${_role}_SOURCES "")
endforeach()
foreach(_name IN LISTS RRWKV_OPS)
  set(_cxx "${RRWKV_OP_${_name}_CXX}")
  set(_lower "${RRWKV_OP_${_name}_CXX_LOWER}")
  string(APPEND _rrwkv_ops_inc "RRWKV_OP(${_name}, ${_cxx}, ${_lower})\n")
  string(APPEND _rrwkv_plugins_h "#include \"${RRWKV_OP_${_name}_PLUGIN_HEADER}\"\n")
  if(RRWKV_OP_${_name}_PARITY_SOURCES)
    string(APPEND _rrwkv_parity_inc "RRWKV_KERNEL_PARITY(${_name}, ${_lower})\n")
  endif()
  string(APPEND _rrwkv_manifest "op ${_name} ${RRWKV_OP_${_name}_FOLDER} ${_cxx}\n"
                                "plugin_header ${_name} plugins/${RRWKV_OP_${_name}_PLUGIN_HEADER}\n")
  foreach(_role CPU ORT CUDA PLUGIN TEST_SHIM PARITY)
    list(APPEND RRWKV_OPS_${_role}_SOURCES ${RRWKV_OP_${_name}_${_role}_SOURCES})
    string(TOLOWER "${_role}" _key)
    foreach(_source IN LISTS RRWKV_OP_${_name}_${_role}_SOURCES)
      file(RELATIVE_PATH _relative "${_rrwkv_repo}" "${_source}")
      string(APPEND _rrwkv_manifest "${_key} ${_name} ${_relative}\n")
    endforeach()
  endforeach()
endforeach()

string(APPEND _rrwkv_plugins_h "#endif // RRWKV_RRWKV_PLUGINS_H\n")
file(CONFIGURE OUTPUT "${RRWKV_OPS_OUT}/rrwkvOps.inc" CONTENT "${_rrwkv_ops_inc}" @ONLY)
file(CONFIGURE OUTPUT "${RRWKV_OPS_OUT}/rrwkvPlugins.h" CONTENT "${_rrwkv_plugins_h}" @ONLY)
file(CONFIGURE OUTPUT "${RRWKV_OPS_OUT}/rrwkvKernelParity.inc" CONTENT "${_rrwkv_parity_inc}" @ONLY)
file(CONFIGURE OUTPUT "${RRWKV_OPS_OUT}/rrwkvOps.txt" CONTENT "${_rrwkv_manifest}" @ONLY)
