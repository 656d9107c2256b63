"""Many pages at once: `chapter` (`inknhue colorize PAGES... -o FOLDER`)."""
