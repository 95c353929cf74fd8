"""The smallest Django app that uses the recipe: one model, its repository, two JSON views."""
