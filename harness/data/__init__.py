"""The measured data the harness reads (profiles, traces, reference tables): where they live,
what they should be (a manifest with sha256 per file) and how to fetch them from upstream."""
