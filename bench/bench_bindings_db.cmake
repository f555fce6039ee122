# bench_bindings_db: the daemon's bindings database lives in p2psipd_core.
target_link_libraries(${name} PRIVATE p2psipd_core)
