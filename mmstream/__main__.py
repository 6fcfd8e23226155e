from mmstream.cli import main

raise SystemExit(main())
