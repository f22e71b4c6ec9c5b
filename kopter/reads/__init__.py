"""One query and one view per area, called by every face: the command line, the read API and,
through the API, the customers' web app. A field added to a view shows in all of them."""
