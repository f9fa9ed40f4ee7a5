"""`python -m assets.privacy --email x@y.com`: file an erasure request (see intake.main)."""

from assets.privacy.intake import main
from resources.exit import leave

leave(main())
