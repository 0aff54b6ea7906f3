"""Live dispatch: worker flow API and the embedded dispatcher."""
