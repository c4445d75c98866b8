/*
 * paths.h - where babl and meshd find each other and keep their files.
 *
 * The local default node URL, agreed by both: ipc://$XDG_RUNTIME_DIR/babl/meshd.sock,
 * or /run/babl/meshd.sock for root, or /tmp/babl-UID/meshd.sock.
 * Data: $XDG_DATA_HOME/babl, else ~/.local/share/babl.
 * Keys: $XDG_CONFIG_HOME/babl, else ~/.config/babl.
 * Each function writes a NUL-terminated path into buf and returns 0, or
 * BABL_ETOOBIG if it does not fit, BABL_EUSAGE if HOME is unset.
 */
#ifndef BABL_PATHS_H
#define BABL_PATHS_H

#include <stddef.h>

int paths_default_url(char *buf, size_t n);
int paths_data_dir(char *buf, size_t n);
int paths_config_dir(char *buf, size_t n);
/* mkdir -p with the given mode for each created component. */
int paths_mkdirs(const char *path, unsigned mode);

#endif
