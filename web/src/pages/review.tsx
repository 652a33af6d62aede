import Layout, { Notice } from "@/components/Layout";

export default function Page() {
  return (
    <Layout title="review">
      <Notice>This page is being built.</Notice>
    </Layout>
  );
}
