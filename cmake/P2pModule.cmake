# p2p_module(NAME DEPS dep...): one static library per module folder.
#
# Sources are the folder's *.c files, collected with CONFIGURE_DEPENDS so that a new
# file is picked up by the next build without every author editing one shared list
# (several people add files to a module at once).  Public headers are in include/,
# private ones next to the sources.  A module with no sources yet is an INTERFACE
# library, so that dependants can already name it.
function(p2p_module name)
    cmake_parse_arguments(M "" "" "DEPS" ${ARGN})
    file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.c)
    if(srcs)
        add_library(${name} STATIC ${srcs})
        target_include_directories(${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include
                                   PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
        target_link_libraries(${name} PUBLIC ${M_DEPS})
    else()
        add_library(${name} INTERFACE)
        target_include_directories(${name} INTERFACE ${CMAKE_CURRENT_SOURCE_DIR}/include)
        target_link_libraries(${name} INTERFACE ${M_DEPS})
    endif()
endfunction()
