from ppocoder_jax.cli import main

raise SystemExit(main())
