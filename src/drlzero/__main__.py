from drlzero.cli import main

raise SystemExit(main())
