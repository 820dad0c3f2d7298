from monitor.lab.cli import main

raise SystemExit(main())
