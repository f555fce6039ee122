# Packaging.cmake: a Debian package of what "cmake --install" installs, built by
# CPack's DEB generator:
#
#     cmake -S . -B build -DCMAKE_INSTALL_PREFIX=/usr && cmake --build build -j2
#     (cd build && cpack -G DEB)          # build/p2psip_<version>_<arch>.deb
#
# Contents (the install() rules of p2psipd/ and gui/): p2psipd in sbin, p2psipctl
# and, when it is built, p2psip-gui in bin, their man pages, the commented default
# configuration /etc/p2psip/p2psipd.conf (a conffile: an edited copy survives
# upgrades and "dpkg -r"; "dpkg -P" removes it) and the systemd unit p2psipd.service,
# installed but neither enabled nor started (no maintainer scripts).
#
# The package installs under CMAKE_INSTALL_PREFIX, the prefix the unit's ExecStart
# and --config paths were computed from, so a package is always consistent with
# itself; a Debian package wants /usr (cpack warns otherwise).  Depends: comes from
# dpkg-shlibdeps (dpkg-dev) on the installed executables' shared libraries.
set(P2P_PACKAGE_MAINTAINER "p2psip maintainers <maintainers@p2psip.invalid>"
    CACHE STRING "Maintainer field of the Debian package")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME p2psip)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${P2P_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "peer-to-peer SIP: softphones call each other with no server")
set(CPACK_PACKAGE_DESCRIPTION "\
Every machine runs a node, p2psipd, and a SIP softphone uses its local node as
registrar and proxy on 127.0.0.1:5062.  The nodes form one overlay: a
Bamboo-style DHT over authenticated, encrypted channels (Noise XXpsk0).  A
REGISTER becomes a signed record of the phone's address-of-record in the DHT; a
call to that AoR is looked up there and carried to the callee's node.
.
This package holds the daemon p2psipd, its control client p2psipctl, the ring
viewer p2psip-gui when it was built, their manual pages, the default
configuration and a hardened systemd unit (not enabled).")
set(CPACK_PACKAGING_INSTALL_PREFIX "${CMAKE_INSTALL_PREFIX}")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${P2P_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Debian ships stripped executables (the build tree keeps its debug information).
set(CPACK_STRIP_FILES ON)
# dpkg keeps an administrator's edits of a conffile; CPack marks none by itself.
configure_file(${PROJECT_SOURCE_DIR}/cmake/deb-conffiles.in
               ${PROJECT_BINARY_DIR}/deb/conffiles @ONLY)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_BINARY_DIR}/deb/conffiles)
set(CPACK_PROJECT_CONFIG_FILE ${PROJECT_SOURCE_DIR}/cmake/CPackProject.cmake)
include(CPack)
