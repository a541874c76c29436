output "flux_path" {
  description = "Repository path Flux reconciles for this cluster."
  value       = flux_bootstrap_git.this.path
}
