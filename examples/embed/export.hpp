// ESAMP_EMBED_API marks what the esamp_embed shared library exports; the rest of it, its Eigen code
// compiled for this machine's CPU included, stays inside (hidden visibility).
#pragma once

#define ESAMP_EMBED_API __attribute__((visibility("default")))
