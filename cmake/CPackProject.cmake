# CPackProject.cmake: read by cpack at packaging time (CPACK_PROJECT_CONFIG_FILE).
# A Debian package belongs in /usr; one built from a tree configured for another
# prefix works but is not what Debian expects, so say so.
if(CPACK_GENERATOR STREQUAL "DEB" AND NOT CPACK_PACKAGING_INSTALL_PREFIX STREQUAL "/usr")
    message(WARNING "p2psip: this .deb installs under ${CPACK_PACKAGING_INSTALL_PREFIX}; "
            "configure with -DCMAKE_INSTALL_PREFIX=/usr for a Debian package")
endif()
