# bench_sip_parse: compares our parser with libosip2 (Debian libosip2-dev, listed in
# scripts/deps.sh bench group).  Without it the bench still builds and says so.
pkg_check_modules(OSIP2 IMPORTED_TARGET libosip2)
target_compile_definitions(${name} PRIVATE P2P_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
if(OSIP2_FOUND)
    target_link_libraries(${name} PRIVATE PkgConfig::OSIP2)
else()
    target_compile_definitions(${name} PRIVATE P2P_NO_OSIP)
endif()
