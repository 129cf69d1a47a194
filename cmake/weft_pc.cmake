# Runs at install time (from cmake/install.cmake): writes weft.pc for the prefix being
# installed to and installs it into <libdir>/pkgconfig.
# In: WEFT_PC_TEMPLATE, WEFT_PC_OUTPUT, WEFT_PC_VERSION, WEFT_PC_LIBDIR, WEFT_PC_INCLUDEDIR
# (the last two as configured: relative to the prefix, or absolute).
set(WEFT_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${WEFT_PC_${dir}}")
    set(WEFT_PC_${dir}_VALUE "${WEFT_PC_${dir}}")
    set(WEFT_PC_${dir}_ABSOLUTE "${WEFT_PC_${dir}}")
  else()
    set(WEFT_PC_${dir}_VALUE "\${prefix}/${WEFT_PC_${dir}}")
    set(WEFT_PC_${dir}_ABSOLUTE "${CMAKE_INSTALL_PREFIX}/${WEFT_PC_${dir}}")
  endif()
endforeach()
configure_file("${WEFT_PC_TEMPLATE}" "${WEFT_PC_OUTPUT}" @ONLY)
# file(INSTALL) prepends $DESTDIR and records the file in install_manifest.txt, as the
# generated install rules do.
file(INSTALL DESTINATION "${WEFT_PC_LIBDIR_ABSOLUTE}/pkgconfig" TYPE FILE FILES "${WEFT_PC_OUTPUT}")
