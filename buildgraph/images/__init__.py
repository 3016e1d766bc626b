"""Image stages as Docker images (imports nothing heavy: import the module you need).

    context.py     the build context tar: exactly the copy sources, .dockerignore rules, deterministic
    ignore.py      .dockerignore pattern matching
    dockerfile.py  pure rendering: `render_stage` (what bg builds), `render_standalone` (`bg dockerfile`)
    argrefs.py     args kept as `${NAME}` in `bg dockerfile` output, so `--build-arg` works
    dfsyntax.py    Dockerfile lines as BuildKit's parser reads them; `read` refuses what Docker refuses
    dfargs.py      an instruction's arguments as BuildKit splits them (flags, words, JSON, ENV pairs)
    importer.py    `bg import`: Dockerfile → Buildfile.toml + warnings
    builder.py     `DockerImages`: tags by key, builds, resolves registry bases to digests
    debian.py      offline Debian bases with mmdebstrap + `docker import`

From the core, only pure data and text helpers are imported (`spec`, `interpolate`, `values`).
"""
