// Whiteouts as Docker's archive package writes them in layer tars: a deleted
// path is an empty file `.wh.<name>` beside it, and `.wh..wh..opq` in a
// directory hides everything the lower layers had in it.

/** WhiteoutPrefix: marks a deleted entry. */
export const WHITEOUT_PREFIX = '.wh.';
/** WhiteoutMetaPrefix: names the driver keeps for itself, never unpacked. */
export const WHITEOUT_META_PREFIX = `${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`;
/** WhiteoutOpaqueDir: the directory is opaque. */
export const WHITEOUT_OPAQUE_DIR = `${WHITEOUT_META_PREFIX}.opq`;
